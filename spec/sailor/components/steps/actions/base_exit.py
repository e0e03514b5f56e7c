"""Raises a BaseException that is not an Exception (SystemExit, CancelledError) when asked, else echoes."""

import asyncio
import sys
from typing import Any


def process(self: Any, msg: dict[str, Any], cfg: dict[str, Any], snapshot: dict[str, Any]) -> dict[str, Any]:
    if msg["body"].get("exit"):
        sys.exit(3)
    if msg["body"].get("cancel"):
        raise asyncio.CancelledError("cancelled inside the component")
    return {"body": msg["body"]}
