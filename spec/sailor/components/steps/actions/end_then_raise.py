"""Emits ``end`` itself, then raises: the input is already settled when the error is handled."""

from typing import Any


def process(self: Any, msg: dict[str, Any], cfg: dict[str, Any], snapshot: dict[str, Any]) -> None:
    self.emit("end")
    raise ValueError("failed after end")
