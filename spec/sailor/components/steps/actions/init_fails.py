"""init raises: the sailor publishes a start-up error and exits 1."""

from typing import Any


def init(cfg: dict[str, Any]) -> None:
    raise RuntimeError("OMG. I cannot init")


def process(self: Any, msg: dict[str, Any], cfg: dict[str, Any], snapshot: dict[str, Any]) -> None:
    raise AssertionError("never called")
