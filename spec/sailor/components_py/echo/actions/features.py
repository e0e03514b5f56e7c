"""Features action: the non-data events, driven by the input body (twin of features.js).

``reply`` → httpReply; ``snapshot`` → snapshot ``{a: i}`` then updateSnapshot ``{b: i}``;
``route: K`` → the data message carries ``x-eio-routing-key: K``; always one data message
``{"body": {"i": i, "snapshot": <snapshot argument>}}``.
"""

from __future__ import annotations

from typing import Any


def process(self: Any, msg: dict[str, Any], cfg: dict[str, Any], snapshot: dict[str, Any]) -> None:
    """Emit the events the body asks for, then one data message."""
    b = msg.get("body") or {}
    if b.get("reply"):
        reply = {
            "statusCode": 201,
            "body": f"created {b.get('i')}",
            "headers": {"content-type": "text/plain"},
        }
        self.emit("httpReply", reply)
    if b.get("snapshot"):
        self.emit("snapshot", {"a": b.get("i")})
        self.emit("updateSnapshot", {"b": b.get("i")})
    headers = {"x-eio-routing-key": b["route"]} if b.get("route") else {}
    self.emit("data", {"body": {"i": b.get("i"), "snapshot": snapshot}, "headers": headers})
