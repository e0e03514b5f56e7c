"""``async def`` service functions: the sailor awaits them."""

import asyncio
from typing import Any


async def getMetaModel(cfg: dict[str, Any]) -> dict[str, Any]:  # name fixed by the platform
    await asyncio.sleep(0)
    return {"in": {"type": "object", "properties": {"a": {"type": "string", "title": "A " + cfg["apiKey"]}}},
            "out": {}}


async def process(self: Any, msg: dict[str, Any], cfg: dict[str, Any], snapshot: dict[str, Any]) -> None:
    return None
