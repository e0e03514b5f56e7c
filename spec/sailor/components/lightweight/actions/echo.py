"""Emits the incoming body as a data message (twice with ``{"twice": true}`` in the body)."""

from typing import Any


def process(self: Any, msg: dict[str, Any], cfg: dict[str, Any], snapshot: dict[str, Any]) -> None:
    body = msg["body"]
    for _ in range(2 if isinstance(body, dict) and body.get("twice") else 1):
        self.emit("data", {"body": body})
