"""An ``async def`` verifier: the sailor awaits it."""

import asyncio
from typing import Any


async def verify(self: Any, credentials: dict[str, Any]) -> dict[str, Any]:
    await asyncio.sleep(0)
    return {"verified": False, "reason": "async says no"}
