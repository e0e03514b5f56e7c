"""Returns the whole message process() received, so tests see what the sailor handed over."""

from typing import Any


def process(self: Any, msg: dict[str, Any], cfg: dict[str, Any], snapshot: dict[str, Any]) -> dict[str, Any]:
    return {"body": {"msg": msg}}
