"""Emits data whose headers carry x-eio-routing-key (taken from the body)."""

from typing import Any


def process(self: Any, msg: dict[str, Any], cfg: dict[str, Any], snapshot: dict[str, Any]) -> None:
    self.emit("data", {"body": {"routed": True}, "headers": {"X-EIO-Routing-Key": msg["body"]["key"], "keep": "me"}})
