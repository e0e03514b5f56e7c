"""Emits updateKeys with the keys in the body, then returns."""

from typing import Any


def process(self: Any, msg: dict[str, Any], cfg: dict[str, Any], snapshot: dict[str, Any]) -> dict[str, Any]:
    self.emit("updateKeys", msg["body"]["keys"])
    return {"body": {"updated": True}}
