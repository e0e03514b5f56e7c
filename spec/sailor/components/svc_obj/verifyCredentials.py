"""A verifier returning the platform's shape with a reason."""

from typing import Any


def verify(self: Any, credentials: dict[str, Any]) -> dict[str, Any]:
    return {"verified": False, "reason": "bad key"}
