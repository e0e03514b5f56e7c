"""Raises Rebound: the original message is re-published to the rebound key and the input acked. A body with
``details`` rebounds with those details (what the error event past the rebound limit carries)."""

from typing import Any

from elasticio_sailor import Rebound


def process(self: Any, msg: dict[str, Any], cfg: dict[str, Any], snapshot: dict[str, Any]) -> None:
    details = (msg.get("body") or {}).get("details")
    raise Rebound("try later", details=details if isinstance(details, dict) else None)
