"""Verifier found through component.json credentials.verifier; accepts only apiKey k1."""

from typing import Any


def verify(self: Any, credentials: dict[str, Any]) -> dict[str, Any]:
    return {"verified": credentials.get("apiKey") == "k1"}
