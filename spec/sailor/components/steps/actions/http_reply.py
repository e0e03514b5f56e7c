"""Emits an httpReply (sent to the incoming reply_to), then data."""

from typing import Any


def process(self: Any, msg: dict[str, Any], cfg: dict[str, Any], snapshot: dict[str, Any]) -> dict[str, Any]:
    self.emit("httpReply", {"statusCode": 201, "body": "created", "headers": {"content-type": "text/plain"}})
    return {"body": {"replied": True}}
