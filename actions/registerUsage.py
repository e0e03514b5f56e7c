"""Register Usage: register a paid container task or pod and get the signed entitlement token."""

from __future__ import annotations

from typing import Any

from lib.operations import OPERATIONS
from lib.runner import run

OPERATION = OPERATIONS["registerUsage"]


def process(self: Any, msg: dict[str, Any], cfg: dict[str, Any], snapshot: dict[str, Any]) -> dict[str, Any] | None:
    """Called by the sailor once per message; returns the outgoing message or raises."""
    return run(OPERATION, self, msg, cfg)
