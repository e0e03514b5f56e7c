"""A verifier whose function is not called ``verify``: the sailor must not treat that as "verified"."""

from typing import Any


def verifyCredentials(self: Any, credentials: dict[str, Any]) -> dict[str, Any]:  # noqa: N802 - the mistake
    return {"verified": False, "reason": "never called"}
