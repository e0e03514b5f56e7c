"""Sailor settings: every ``ELASTICIO_*`` variable read from one table.

Parsing follows elasticio-sailor-nodejs 2.7.8 (lib/settings.js) on purpose, quirks included, so that a
platform environment means the same to both sailors:

* required: missing or empty string is an error (all missing names are reported at once);
* numbers: ``parseInt(value) || default`` — ``"0"`` and ``"abc"`` give the default, ``"10abc"`` gives 10;
* booleans: unset gives the default, ``""``/``"false"`` give False, any other string gives True;
* strings: ``value or default``.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

PREFIX = "ELASTICIO_"

REQUIRED_ALWAYS = (
    "FLOW_ID",
    "EXEC_ID",
    "STEP_ID",
    "CONTAINER_ID",
    "WORKSPACE_ID",
    "USER_ID",
    "COMP_ID",
    "FUNCTION",
    "API_URI",
    "API_USERNAME",
    "API_KEY",
)
REQUIRED_FOR_AMQP = (
    "AMQP_URI",
    "LISTEN_MESSAGES_ON",
    "PUBLISH_MESSAGES_TO",
    "DATA_ROUTING_KEY",
    "ERROR_ROUTING_KEY",
    "REBOUND_ROUTING_KEY",
    "SNAPSHOT_ROUTING_KEY",
    "MESSAGE_CRYPTO_IV",
    "MESSAGE_CRYPTO_PASSWORD",
)

# key -> default; the type of the default decides how the value is parsed.
OPTIONAL: dict[str, Any] = {
    "REBOUND_INITIAL_EXPIRATION": 15000,
    "REBOUND_LIMIT": 20,
    "COMPONENT_PATH": "",
    "RABBITMQ_PREFETCH_SAILOR": 1,
    "STARTUP_REQUIRED": False,
    "HOOK_SHUTDOWN": False,
    "API_REQUEST_RETRY_ATTEMPTS": 3,
    "API_REQUEST_RETRY_DELAY": 100,
    "DATA_RATE_LIMIT": 10,
    "ERROR_RATE_LIMIT": 2,
    "SNAPSHOT_RATE_LIMIT": 2,
    "RATE_INTERVAL": 100,
    "PROCESS_AMQP_DRAIN": True,
    "AMQP_PUBLISH_RETRY_DELAY": 100,
    "AMQP_PUBLISH_RETRY_ATTEMPTS": math.inf,
    "AMQP_PUBLISH_MAX_RETRY_DELAY": 300000,
    "AMQP_PERSISTENT_MESSAGES": False,
    "OUTGOING_MESSAGE_SIZE_LIMIT": 10485760,
    "NO_SELF_PASSTRHOUGH": False,
    "PROTOCOL_VERSION": 1,
    "NO_ERROR_REPLIES": False,
    "INPUT_FORMAT": "default",
    "OBJECT_STORAGE_URI": None,
    "OBJECT_STORAGE_TOKEN": None,
    "OBJECT_STORAGE_SIZE_THRESHOLD": 1048576,
    "EMIT_LIGHTWEIGHT_MESSAGE": False,
    "AMQP_RECONNECT_ATTEMPTS": 3,
    "AMQP_RECONNECT_TIMEOUT": 100,
    "WAIT_MESSAGES_TIMEOUT": 50,
}

# Values that must never appear in a log line or an error text.
SECRET_KEYS = ("API_KEY", "MESSAGE_CRYPTO_PASSWORD", "OBJECT_STORAGE_TOKEN")

_INT_PREFIX = re.compile(r"^\s*([+-]?\d+)")


class SettingsError(Exception):
    """Raised with every problem found in the environment, not just the first."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def parse_int(raw: str | None, default: float) -> float:
    """JavaScript ``parseInt(raw) || default``: a leading integer, 0 and garbage fall back."""
    if not raw:
        return default
    m = _INT_PREFIX.match(raw)
    if not m:
        return default
    value = int(m.group(1))
    return value or default


def parse_bool(raw: str | None, default: bool) -> bool:
    """Node rule: unset → default; ``""``/``"false"`` → False; anything else → True."""
    if raw is None:
        return default
    return not (raw == "" or raw == "false")


def camel_case(name: str) -> str:
    """lodash ``camelCase`` for the UPPER_SNAKE names used in ADDITIONAL_VARS_FOR_HEADERS."""
    words: list[str] = []
    for chunk in re.split(r"[^A-Za-z0-9]+", name):
        # lodash splits "MY_VAR2X" into MY, VAR, 2, X and "ABCDef" into ABC, Def.
        words.extend(re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+", chunk))
    if not words:
        return ""
    out = words[0].lower()
    for w in words[1:]:
        out += w[:1].upper() + w[1:].lower()
    return out


@dataclass
class Settings:
    """Parsed sailor settings; attribute names are the variable names without the prefix."""

    values: dict[str, Any]
    additional_headers: dict[str, str] = field(default_factory=dict)

    def __getattr__(self, key: str) -> Any:
        try:
            return self.__dict__["values"][key]
        except KeyError:
            raise AttributeError(key) from None

    def secrets(self) -> list[str]:
        """The live secret values (for the log redaction filter)."""
        out = [str(self.values[k]) for k in SECRET_KEYS if self.values.get(k)]
        uri = self.values.get("AMQP_URI") or ""
        m = re.match(r"^[a-z]+://[^:/@]*:([^@/]+)@", uri)
        if m:
            out.append(m.group(1))
        return out


def _required(env: Mapping[str, str], keys: tuple[str, ...], problems: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key in keys:
        value = env.get(PREFIX + key)
        if not value:
            problems.append(f"{PREFIX}{key} is missing")
        else:
            out[key] = value
    return out


def load_settings(env: Mapping[str, str] | None = None, *, amqp: bool | None = None) -> Settings:
    """Build the settings of flow-step mode; raise SettingsError naming everything missing or invalid.

    ``amqp=None`` follows Node: the AMQP variables are required unless ``ELASTICIO_HOOK_SHUTDOWN`` is a
    non-empty string.
    """
    env = os.environ if env is None else env
    problems: list[str] = []
    values: dict[str, Any] = {}
    values.update(_required(env, REQUIRED_ALWAYS, problems))
    if amqp is None:
        amqp = not env.get(PREFIX + "HOOK_SHUTDOWN")
    if amqp:
        values.update(_required(env, REQUIRED_FOR_AMQP, problems))
    for key in REQUIRED_FOR_AMQP:
        values.setdefault(key, env.get(PREFIX + key) or None)
    for key, default in OPTIONAL.items():
        raw = env.get(PREFIX + key)
        if isinstance(default, bool):
            values[key] = parse_bool(raw, default)
        elif isinstance(default, (int, float)) and default is not None:
            values[key] = parse_int(raw, default)
        else:
            values[key] = raw or default
    iv = values.get("MESSAGE_CRYPTO_IV")
    if iv and len(iv.encode("utf-8")) != 16:
        # Node only fails at the first encryption; failing at start is kinder and is §13 check 6.
        problems.append(f"{PREFIX}MESSAGE_CRYPTO_IV must be 16 bytes in UTF-8")
    if values["PROTOCOL_VERSION"] not in (1, 2):
        problems.append(f"{PREFIX}PROTOCOL_VERSION must be 1 or 2")
    if problems:
        raise SettingsError(problems)
    return Settings(values, additional_headers(env))


def additional_headers(env: Mapping[str, str]) -> dict[str, str]:
    """``ELASTICIO_ADDITIONAL_VARS_FOR_HEADERS`` → camelCased header name → value (unset ones omitted)."""
    spec = env.get(PREFIX + "ADDITIONAL_VARS_FOR_HEADERS")
    out: dict[str, str] = {}
    if not spec:
        return out
    for name in (n.strip() for n in spec.split(",")):
        key = name.removeprefix(PREFIX)
        value = env.get(name)
        if value is not None:
            out[camel_case(key)] = value
    return out
