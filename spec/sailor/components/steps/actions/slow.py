"""Signals that it started (touches body["marker"]), sleeps body["sleep"] seconds, then returns the body.

Used for graceful shutdown and redelivery, where the test must act while the message is in processing.
"""

import pathlib
import time
from typing import Any


def process(self: Any, msg: dict[str, Any], cfg: dict[str, Any], snapshot: dict[str, Any]) -> dict[str, Any]:
    if msg["body"].get("marker"):
        pathlib.Path(msg["body"]["marker"]).touch()
    time.sleep(msg["body"].get("sleep", 1))
    return {"body": msg["body"]}
