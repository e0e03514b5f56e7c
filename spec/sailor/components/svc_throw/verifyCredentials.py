"""A verifier that raises: reported as not verified with the exception text as reason."""

from typing import Any


def verify(self: Any, credentials: dict[str, Any]) -> bool:
    raise ValueError("nope: " + credentials["apiKey"])
