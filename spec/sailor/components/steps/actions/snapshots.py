"""Applies the snapshot operations listed in the body, then returns the snapshot it was given."""

from typing import Any


def process(self: Any, msg: dict[str, Any], cfg: dict[str, Any], snapshot: dict[str, Any]) -> dict[str, Any]:
    for op in msg["body"].get("ops", []):
        self.emit(op["event"], op["payload"])
    return {"body": {"snapshot": snapshot}}
