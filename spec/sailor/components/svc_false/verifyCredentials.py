"""A verifier that returns plain False (Node would report it as verified; Python reports not verified)."""

from typing import Any


def verify(self: Any, credentials: dict[str, Any]) -> bool:
    return False
