"""Rebound action: asks the platform to deliver the message again later (no data)."""

from __future__ import annotations

from typing import Any

from elasticio_sailor import Rebound


def process(self: Any, msg: dict[str, Any], cfg: dict[str, Any], snapshot: dict[str, Any]) -> None:
    """Raise ``Rebound("try later <i>")``."""
    body = msg.get("body") or {}
    raise Rebound(f"try later {body.get('i')}")
