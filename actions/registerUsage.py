"""Register Usage: register a paid container task or pod and get the signed entitlement token."""

from __future__ import annotations

from typing import Any

from lib.operations import OPERATIONS
from lib.runner import run

OPERATION = OPERATIONS["registerUsage"]


def process(self: Any, msg: dict[str, Any], cfg: dict[str, Any], snapshot: dict[str, Any]) -> dict[str, Any] | None:
    """Called by the sailor once per message; returns the outgoing message or raises."""
    return run(OPERATION, self, whole_key_version(msg), cfg)


def whole_key_version(msg: dict[str, Any]) -> dict[str, Any]:
    """``msg`` with a whole ``PublicKeyVersion`` written as a JSON integer: ``1.0`` (what mapping tools often make
    of a number) is sent as ``1``.

    JSON Schema counts 1.0 as an integer, so the schema accepts it, but AWS's integer member does not: sent as
    ``1.0`` it answers SerializationException. A fractional version (1.5) is left as it is, for the schema to refuse.
    The message itself is not changed.
    """
    body = msg.get("body")
    if isinstance(body, dict):
        version = body.get("PublicKeyVersion")
        if isinstance(version, float) and version.is_integer():
            return {**msg, "body": {**body, "PublicKeyVersion": int(version)}}
    return msg
