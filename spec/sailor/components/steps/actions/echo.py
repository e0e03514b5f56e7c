"""Returns the incoming body: the sailor emits it as data, then end."""

from typing import Any


def process(self: Any, msg: dict[str, Any], cfg: dict[str, Any], snapshot: dict[str, Any]) -> dict[str, Any]:
    return {"body": msg["body"]}
