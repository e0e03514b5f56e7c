"""Sleeps body["sleep"] seconds, then returns the body (graceful shutdown, prefetch, redelivery)."""

import time
from typing import Any


def process(self: Any, msg: dict[str, Any], cfg: dict[str, Any], snapshot: dict[str, Any]) -> dict[str, Any]:
    time.sleep(msg["body"].get("sleep", 1))
    return {"body": msg["body"]}
