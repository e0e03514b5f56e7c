"""Raises Rebound: the original message is re-published to the rebound key and the input acked."""

from typing import Any

from elasticio_sailor import Rebound


def process(self: Any, msg: dict[str, Any], cfg: dict[str, Any], snapshot: dict[str, Any]) -> None:
    raise Rebound("try later")
