"""Message shapes shared by every transport: new messages, error payloads, headers, rebound math."""

from __future__ import annotations

import os
import time
import traceback
from collections.abc import Mapping
from typing import Any

from .logs import REDACTOR

META_PREFIX = "x-eio-meta-"
ROUTING_KEY_HEADER = "x-eio-routing-key"
ERROR_RESPONSE_HEADER = "x-eio-error-response"


_RANDOM_POOL: list[bytes] = []


def uuid4() -> str:
    """A random (version 4) UUID as text, like ``str(uuid.uuid4())``: 16 bytes from ``os.urandom``, version
    nibble 4 and variant bits 10 (RFC 9562 §5.4). The bytes are drawn 4 KiB at a time, as the ``uuid``
    package the Node sailor uses pools ``crypto.randomFillSync`` output (``rng.js``): one system call
    (which also releases the GIL to the other threads) per 256 ids instead of one per id.
    """
    try:
        raw = bytearray(_RANDOM_POOL.pop())  # list.pop/extend are atomic: safe from any thread
    except IndexError:
        blob = os.urandom(4096)
        _RANDOM_POOL.extend(blob[i:i + 16] for i in range(0, 4096, 16))
        raw = bytearray(_RANDOM_POOL.pop())
    raw[6] = raw[6] & 0x0F | 0x40
    raw[8] = raw[8] & 0x3F | 0x80
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class SailorError(Exception):
    """A failure the sailor reports itself (an outgoing message over the size limit, the rebound limit, an
    ``httpReply`` without ``reply_to``): its error event is named ``Error``, as Node's plain ``new Error``."""

    name = "Error"

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.error_details: dict[str, Any] = dict(details or {})  # keys after ``stack`` in the error event


class Rebound(Exception):
    """Raise from ``process`` to have the platform deliver the message again later.

    ``details`` (a dict) follow the reason: should this rebound be past the limit, the sailor's error event
    ``Rebound limit exceeded`` carries the reason (``reboundReason``) and these keys, its last word on the
    message (e.g. what the component did before it failed)."""

    def __init__(self, *args: Any, details: dict[str, Any] | None = None) -> None:
        super().__init__(*args)
        self.error_details: dict[str, Any] = dict(details or {})


def new_message(body: Any, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    """A fresh outgoing message, like elasticio-node's ``newMessageWithBody``."""
    return {
        "id": uuid4(),
        "body": body,
        "headers": dict(headers or {}),
        "attachments": {},
        "metadata": {},
    }


def now_ms() -> int:
    """Epoch milliseconds (the ``start``/``end`` header unit)."""
    return time.time_ns() // 1_000_000


def redacted(value: Any) -> Any:
    """``value`` with every strict secret masked in its text (strings, and those inside dicts and lists);
    anything else unchanged (``logs.Redactor.strict``: the values logs mask only as a precaution stay)."""
    if isinstance(value, str):
        return REDACTOR.strict(value)
    if isinstance(value, Mapping):
        return {k: redacted(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redacted(v) for v in value]
    return value


def format_error(err: Any) -> dict[str, Any]:
    """The ``{"name", "message", "stack"}`` payload of an error event, Node's ``formatError``.

    Exceptions also contribute their ``error_details`` dict (keys added after ``stack``). Every text goes
    through the log redactor's strict masking (``logs.REDACTOR.strict``): an exception quoting a secret — a
    URL with a cfg token, a chained cause in the stack — leaves the process masked, while the ordinary words
    the logs also mask as a precaution stay. Error events, start-up errors and the rebound reason all come
    from here.
    """
    if isinstance(err, BaseException):
        # A component may name its error as in JS (``err.name = "ValidationError"``); the built-in
        # exceptions whose ``name`` attribute means something else (the missing attribute, variable or
        # module) are named by their class, as Node names a TypeError
        name = None if isinstance(err, (AttributeError, NameError, ImportError)) else getattr(err, "name", None)
        if not isinstance(name, str) or not name:
            name = type(err).__name__
        stack = "".join(traceback.format_exception(type(err), err, err.__traceback__)).rstrip("\n")
        out: dict[str, Any] = {"name": REDACTOR.strict(name), "message": REDACTOR.strict(str(err)),
                               "stack": REDACTOR.strict(stack) if stack else "Not Available"}
        details = getattr(err, "error_details", None)
        if isinstance(details, dict):
            for key, value in details.items():
                if key not in out:
                    out[key] = redacted(value)
        return out
    if isinstance(err, Mapping) and "message" in err:
        return {
            "name": redacted(err.get("name") or "Error"),
            "message": redacted(err["message"]),
            "stack": redacted(err.get("stack") or "Not Available"),
        }
    return {"name": "Error", "message": redacted(err or "Not Available"), "stack": "Not Available"}


def incoming_headers(headers: Mapping[str, Any]) -> dict[str, Any]:
    """The incoming AMQP headers a sailor keeps; ``None`` values mean "absent".

    Node: ``lib/sailor.js`` ``readIncomingMessageHeaders``; docs/platform-contract.md §4.6.
    """
    out: dict[str, Any] = {"stepId": headers.get("stepId")}
    for key, value in headers.items():
        if key.lower().startswith(META_PREFIX):
            out[key.lower()] = value
    out["threadId"] = headers.get("threadId") or out.get("x-eio-meta-trace-id") or uuid4()
    out["messageId"] = headers.get("messageId")
    out["parentMessageId"] = headers.get("parentMessageId")
    if headers.get("reply_to"):
        out["reply_to"] = headers["reply_to"]
    return out


def outgoing_headers(
    kept: Mapping[str, Any], static: Mapping[str, Any], additional: Mapping[str, Any]
) -> dict[str, Any]:
    """Headers shared by all emits of one incoming message (key order as Node builds them).

    ``static`` holds execId, taskId, workspaceId, containerId, userId, stepId, compId, function.
    """
    out = dict(kept)
    out.update(additional)
    out["parentMessageId"] = kept.get("messageId")
    out["threadId"] = kept.get("threadId")
    out["messageId"] = uuid4()
    out.update(static)
    out["start"] = now_ms()
    return out


def amqp_headers(headers: Mapping[str, Any]) -> dict[str, Any]:
    """Drop ``None`` values: Node's amqplib omits undefined ones, pika would send a void field."""
    return {k: v for k, v in headers.items() if v is not None}


def pop_routing_key(msg_headers: dict[str, Any]) -> str | None:
    """Remove ``x-eio-routing-key`` (any case) from an emitted message's headers and return its value."""
    found: str | None = None
    for key in [k for k in msg_headers if k.lower() == ROUTING_KEY_HEADER]:
        found = msg_headers.pop(key)
    return found


def rebound_iteration(incoming: Mapping[str, Any]) -> int:
    """Next iteration: incoming ``reboundIteration`` + 1 when it is a number, else 1."""
    value = incoming.get("reboundIteration")
    if isinstance(value, int) and not isinstance(value, bool) and value:
        return value + 1
    return 1


def rebound_expiration(iteration: int, initial_ms: float) -> int:
    """Delay of the given rebound iteration: doubles each time (15 s, 30 s, 60 s, … by default)."""
    return int(2 ** (iteration - 1) * initial_ms)
