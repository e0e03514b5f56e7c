"""Emits the incoming body explicitly (the input is acked after the broker confirmed it), then ``end`` itself
when the body says ``"end": true`` (as a callback-style Node component does)."""

from typing import Any


def process(self: Any, msg: dict[str, Any], cfg: dict[str, Any], snapshot: dict[str, Any]) -> None:
    self.emit("data", {"id": msg["body"].get("outId"), "body": msg["body"]} if msg["body"].get("outId")
              else {"body": msg["body"]})
    if msg["body"].get("end"):
        self.emit("end")
