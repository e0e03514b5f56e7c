"""``async def process``: awaits, emits one message itself, then returns the body (a second message)."""

import asyncio
from typing import Any


async def process(self: Any, msg: dict[str, Any], cfg: dict[str, Any], snapshot: dict[str, Any]) -> dict[str, Any]:
    await asyncio.sleep(0.01)
    self.emit("data", {"body": {"early": msg["body"]["n"]}})
    return {"body": msg["body"]}
