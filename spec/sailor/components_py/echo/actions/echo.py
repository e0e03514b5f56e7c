"""Echo action, the Python twin of the peer harness's echo.js.

Emits the incoming body unchanged as one data message (``emit`` returns once the publish is queued;
the input is acked after the broker confirmed it); ``{"fail": true}`` raises instead.
"""

from __future__ import annotations

from typing import Any


class RequestedFailure(Exception):
    """Raised for inputs that ask for a failure; the sailor publishes it as an error message."""

    name = "Error"


def process(self: Any, msg: dict[str, Any], cfg: dict[str, Any], snapshot: dict[str, Any]) -> None:
    """Emit ``{"body": msg["body"]}``."""
    body = msg.get("body")
    if isinstance(body, dict) and body.get("fail"):
        raise RequestedFailure(f"requested failure {body.get('i')}")
    self.emit("data", {"body": body})
