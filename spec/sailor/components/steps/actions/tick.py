"""A trigger: returns a new message built with elasticio_sailor.new_message."""

from typing import Any

from elasticio_sailor import new_message


def process(self: Any, msg: dict[str, Any], cfg: dict[str, Any], snapshot: dict[str, Any]) -> dict[str, Any]:
    return new_message({"tick": snapshot.get("n", 0) + 1}, headers={"x-custom": "1"})
