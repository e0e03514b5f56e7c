"""Emits an error, then data: both are published and the input is rejected."""

from typing import Any


def process(self: Any, msg: dict[str, Any], cfg: dict[str, Any], snapshot: dict[str, Any]) -> None:
    self.emit("error", ValueError("first this"))
    self.emit("data", {"body": {"after": "error"}})
