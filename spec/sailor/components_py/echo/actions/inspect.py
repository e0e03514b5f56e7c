"""Inspect action: emits one data message whose body is what ``process`` received."""

from __future__ import annotations

from typing import Any


def process(self: Any, msg: dict[str, Any], cfg: dict[str, Any], snapshot: dict[str, Any]) -> None:
    """Emit ``{"body": {"received": msg, "cfg": cfg, "snapshot": snapshot}}``."""
    self.emit("data", {"body": {"received": msg, "cfg": cfg, "snapshot": snapshot}})
