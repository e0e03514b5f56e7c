"""Raises an exception carrying error_details: error message published, input rejected."""

from typing import Any, ClassVar


class QuotaError(Exception):
    name = "QuotaExceeded"
    error_details: ClassVar[dict[str, Any]] = {"code": "Q1", "retryable": False}


def process(self: Any, msg: dict[str, Any], cfg: dict[str, Any], snapshot: dict[str, Any]) -> None:
    raise QuotaError(f"quota gone for {msg['body'].get('who', 'nobody')}")
