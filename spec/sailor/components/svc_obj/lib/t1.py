"""Trigger with dynamic metadata and a select model that refreshes the account keys."""

from typing import Any


def getMetaModel(cfg: dict[str, Any]) -> dict[str, Any]:  # name fixed by the platform
    return {"in": {"type": "object", "properties": {"a": {"type": "string", "title": "A " + cfg["apiKey"]}}},
            "out": {}}


def getStatusModel(self: Any, cfg: dict[str, Any]) -> dict[str, str]:  # named in component.json
    self.emit("updateKeys", {"token": "new"})
    return {"available": "Available", "sold": "Sold"}


def process(self: Any, msg: dict[str, Any], cfg: dict[str, Any], snapshot: dict[str, Any]) -> None:
    return None
