"""Appends body["i"] to the file body["log"] (one line per process() call), sleeps body["sleep"], echoes.

Lets drills count how often each message was processed.
"""

import os
import time
from typing import Any


def process(self: Any, msg: dict[str, Any], cfg: dict[str, Any], snapshot: dict[str, Any]) -> dict[str, Any]:
    fd = os.open(msg["body"]["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{msg['body']['i']}\n".encode())
    finally:
        os.close(fd)
    time.sleep(msg["body"].get("sleep", 0))
    return {"body": msg["body"]}
