"""Emits body["n"] data messages (rate limits, size limit via body["size"])."""

from typing import Any


def process(self: Any, msg: dict[str, Any], cfg: dict[str, Any], snapshot: dict[str, Any]) -> None:
    for i in range(msg["body"].get("n", 1)):
        self.emit("data", {"body": {"i": i, "pad": "x" * msg["body"].get("size", 0)}})
