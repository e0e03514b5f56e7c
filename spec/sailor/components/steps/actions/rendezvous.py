"""Waits (up to body["wait"] s) until body["n"] messages are in process() at the same time.

Emits {"met": true} when they were, {"met": false} otherwise: proves concurrent processing
(prefetch > 1) without measuring time.
"""

import pathlib
import time
from typing import Any


def process(self: Any, msg: dict[str, Any], cfg: dict[str, Any], snapshot: dict[str, Any]) -> dict[str, Any]:
    room = pathlib.Path(msg["body"]["dir"])
    (room / msg["body"]["me"]).touch()
    deadline = time.monotonic() + msg["body"].get("wait", 20)
    while time.monotonic() < deadline:
        if len(list(room.iterdir())) >= msg["body"]["n"]:
            return {"body": {"met": True, "me": msg["body"]["me"]}}
        time.sleep(0.02)
    return {"body": {"met": False, "me": msg["body"]["me"]}}
