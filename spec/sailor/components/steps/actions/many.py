"""Emits body["n"] data messages (rate limits; size limit via body["size"], padding every message or only
those whose index is in body["big"])."""

from typing import Any


def process(self: Any, msg: dict[str, Any], cfg: dict[str, Any], snapshot: dict[str, Any]) -> None:
    big = msg["body"].get("big")
    for i in range(msg["body"].get("n", 1)):
        size = msg["body"].get("size", 0) if big is None or i in big else 0
        self.emit("data", {"body": {"i": i, "pad": "x" * size}})
