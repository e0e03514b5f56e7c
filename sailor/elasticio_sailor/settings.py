"""Sailor settings: one typed, frozen object read once from the ``ELASTICIO_*`` environment.

The fields of :class:`Settings` are the table: a field's name is the variable's name without the prefix,
its metadata says whether it is required (always, or for AMQP), and the type of its default decides how
it is parsed. Parsing follows elasticio-sailor-nodejs 2.7.8 (``lib/settings.js``: ``getMandatoryEnvVars``,
``getOptionalEnvVars``, ``getAdditionalVars``) on purpose, quirks included, so that a platform
environment means the same to both sailors (docs/platform-contract.md §2.1):

* required: missing or empty string is an error (all missing names are reported at once);
* numbers: ``parseInt(value) || default`` — ``"0"`` and ``"abc"`` give the default, ``"10abc"`` gives 10;
* booleans: unset gives the default, ``""``/``"false"`` give False, any other string gives True;
* strings: ``value or default``.

Service mode reads its own few variables (Node's ``lib/service.js`` ``processService``) into
:class:`ServiceSettings`, with the same helpers.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

PREFIX = "ELASTICIO_"

_ALWAYS = MappingProxyType({"required": "always"})
_FOR_AMQP = MappingProxyType({"required": "amqp"})
_DERIVED = MappingProxyType({"required": "derived"})


@dataclass(frozen=True, slots=True)
class Settings:
    """Parsed flow-step settings; attribute names are the variable names without the prefix."""

    # required always
    FLOW_ID: str = field(metadata=_ALWAYS)
    EXEC_ID: str = field(metadata=_ALWAYS)
    STEP_ID: str = field(metadata=_ALWAYS)
    CONTAINER_ID: str = field(metadata=_ALWAYS)
    WORKSPACE_ID: str = field(metadata=_ALWAYS)
    USER_ID: str = field(metadata=_ALWAYS)
    COMP_ID: str = field(metadata=_ALWAYS)
    FUNCTION: str = field(metadata=_ALWAYS)
    API_URI: str = field(metadata=_ALWAYS)
    API_USERNAME: str = field(metadata=_ALWAYS)
    API_KEY: str = field(metadata=_ALWAYS)
    # required unless ELASTICIO_HOOK_SHUTDOWN (then None when unset)
    AMQP_URI: str | None = field(default=None, metadata=_FOR_AMQP)
    LISTEN_MESSAGES_ON: str | None = field(default=None, metadata=_FOR_AMQP)
    PUBLISH_MESSAGES_TO: str | None = field(default=None, metadata=_FOR_AMQP)
    DATA_ROUTING_KEY: str | None = field(default=None, metadata=_FOR_AMQP)
    ERROR_ROUTING_KEY: str | None = field(default=None, metadata=_FOR_AMQP)
    REBOUND_ROUTING_KEY: str | None = field(default=None, metadata=_FOR_AMQP)
    SNAPSHOT_ROUTING_KEY: str | None = field(default=None, metadata=_FOR_AMQP)
    MESSAGE_CRYPTO_IV: str | None = field(default=None, metadata=_FOR_AMQP)
    MESSAGE_CRYPTO_PASSWORD: str | None = field(default=None, metadata=_FOR_AMQP)
    # optional, Node's defaults (lib/settings.js getOptionalEnvVars), in Node's order
    REBOUND_INITIAL_EXPIRATION: int = 15000
    REBOUND_LIMIT: int = 20
    COMPONENT_PATH: str = ""
    RABBITMQ_PREFETCH_SAILOR: int = 1
    STARTUP_REQUIRED: bool = False
    HOOK_SHUTDOWN: bool = False
    API_REQUEST_RETRY_ATTEMPTS: int = 3
    API_REQUEST_RETRY_DELAY: int = 100
    DATA_RATE_LIMIT: int = 10
    ERROR_RATE_LIMIT: int = 2
    SNAPSHOT_RATE_LIMIT: int = 2
    RATE_INTERVAL: int = 100
    PROCESS_AMQP_DRAIN: bool = True
    AMQP_PUBLISH_RETRY_DELAY: int = 100
    AMQP_PUBLISH_RETRY_ATTEMPTS: float = math.inf
    AMQP_PUBLISH_MAX_RETRY_DELAY: int = 300000
    AMQP_PERSISTENT_MESSAGES: bool = False
    OUTGOING_MESSAGE_SIZE_LIMIT: int = 10485760
    NO_SELF_PASSTRHOUGH: bool = False
    PROTOCOL_VERSION: int = 1
    NO_ERROR_REPLIES: bool = False
    INPUT_FORMAT: str = "default"
    OBJECT_STORAGE_URI: str | None = None
    OBJECT_STORAGE_TOKEN: str | None = None
    OBJECT_STORAGE_SIZE_THRESHOLD: int = 1048576
    EMIT_LIGHTWEIGHT_MESSAGE: bool = False
    AMQP_RECONNECT_ATTEMPTS: int = 3
    AMQP_RECONNECT_TIMEOUT: int = 100
    WAIT_MESSAGES_TIMEOUT: int = 50
    # ELASTICIO_ADDITIONAL_VARS_FOR_HEADERS, camelCased header name -> value
    additional_headers: Mapping[str, str] = field(default_factory=dict, metadata=_DERIVED)

    @property
    def values(self) -> dict[str, Any]:
        """Every variable's value by name (without the prefix); a copy."""
        return {f.name: getattr(self, f.name) for f in _VARIABLES}

    def amqp(self) -> AmqpSettings:
        """The AMQP variables as non-optional strings (flow-step mode; they are checked at load)."""
        missing = [f"{PREFIX}{k} is missing" for k in REQUIRED_FOR_AMQP if not getattr(self, k)]
        if missing:
            raise SettingsError(missing)
        return AmqpSettings(*(str(getattr(self, k)) for k in REQUIRED_FOR_AMQP))

    def secrets(self) -> list[str]:
        """The live secret values (for the log redaction filter), each also as sent: stripped (a token mounted
        from a file often ends in a line break; objectstorage.py sends it without)."""
        out = [str(v) for k in SECRET_KEYS if (v := getattr(self, k))]
        out.extend(url_password(self.AMQP_URI))
        return out + [v.strip() for v in out if v.strip() != v]


@dataclass(frozen=True, slots=True)
class AmqpSettings:
    """The variables required for message processing (Node's ``requiredForMessageProcessing``)."""

    AMQP_URI: str
    LISTEN_MESSAGES_ON: str
    PUBLISH_MESSAGES_TO: str
    DATA_ROUTING_KEY: str
    ERROR_ROUTING_KEY: str
    REBOUND_ROUTING_KEY: str
    SNAPSHOT_ROUTING_KEY: str
    MESSAGE_CRYPTO_IV: str
    MESSAGE_CRYPTO_PASSWORD: str


_VARIABLES = tuple(f for f in dataclasses.fields(Settings) if f.metadata.get("required") != "derived")
REQUIRED_ALWAYS = tuple(f.name for f in _VARIABLES if f.metadata.get("required") == "always")
REQUIRED_FOR_AMQP = tuple(f.name for f in _VARIABLES if f.metadata.get("required") == "amqp")
# key -> default; the type of the default decides how the value is parsed (as Node's `typeof`).
OPTIONAL: Mapping[str, Any] = MappingProxyType(
    {f.name: f.default for f in _VARIABLES if "required" not in f.metadata}
)

# Values that must never appear in a log line or an error text (the IV is key material too).
SECRET_KEYS = ("API_KEY", "MESSAGE_CRYPTO_PASSWORD", "MESSAGE_CRYPTO_IV", "OBJECT_STORAGE_TOKEN")

# scheme://user:password@ — the userinfo ends at the last "@" before the path, query or fragment
_URL_PASSWORD = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^:/?#]*:([^/?#]*)@")


def url_password(url: str | None) -> list[str]:
    """The password of ``url``'s userinfo as written (percent-encoded) and decoded (as the client sends
    it: ``p%40ss`` is ``p@ss``); empty without one."""
    m = _URL_PASSWORD.match(url or "")
    if not m or not m.group(1):
        return []
    raw = m.group(1)
    decoded = urllib.parse.unquote(raw)
    return [raw] if decoded == raw else [raw, decoded]

_INT_PREFIX = re.compile(r"^\s*([+-]?\d+)")


class SettingsError(Exception):
    """Raised with every problem found in the environment, not just the first."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def js_parse_int(raw: str | None) -> int | None:
    """JavaScript ``parseInt(raw)``: the leading integer, or ``None`` for NaN."""
    m = _INT_PREFIX.match(raw) if raw else None
    return int(m.group(1)) if m else None


def parse_int(raw: str | None, default: float) -> float:
    """JavaScript ``parseInt(raw) || default``: a leading integer, 0 and garbage fall back."""
    return js_parse_int(raw) or default


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


def _required(env: Mapping[str, str], keys: tuple[str, ...], problems: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key in keys:
        value = env.get(PREFIX + key)
        if not value:
            problems.append(f"{PREFIX}{key} is missing")
        else:
            out[key] = value
    return out


def _optional(raw: str | None, default: Any) -> Any:
    if isinstance(default, bool):
        return parse_bool(raw, default)
    if isinstance(default, (int, float)):
        return parse_int(raw, default)
    return raw or default


def load_settings(env: Mapping[str, str] | None = None, *, amqp: bool | None = None) -> Settings:
    """Build the settings of flow-step mode; raise SettingsError naming everything missing or invalid.

    ``amqp=None`` follows Node: the AMQP variables are required unless ``ELASTICIO_HOOK_SHUTDOWN`` is a
    non-empty string.
    """
    env = os.environ if env is None else env
    problems: list[str] = []
    values: dict[str, Any] = _required(env, REQUIRED_ALWAYS, problems)
    if amqp is None:
        amqp = not env.get(PREFIX + "HOOK_SHUTDOWN")
    if amqp:
        values.update(_required(env, REQUIRED_FOR_AMQP, problems))
    for key in REQUIRED_FOR_AMQP:
        values.setdefault(key, env.get(PREFIX + key) or None)
    for key, default in OPTIONAL.items():
        values[key] = _optional(env.get(PREFIX + key), default)
    iv = values.get("MESSAGE_CRYPTO_IV")
    if iv and len(iv.encode("utf-8")) != 16:
        # Node only fails at the first encryption; failing at start is kinder
        # (docs/platform-contract.md §13, check 6).
        problems.append(f"{PREFIX}MESSAGE_CRYPTO_IV must be 16 bytes in UTF-8")
    if values["PROTOCOL_VERSION"] not in (1, 2):
        problems.append(f"{PREFIX}PROTOCOL_VERSION must be 1 or 2")
    if problems:
        raise SettingsError(problems)
    return Settings(**values, additional_headers=MappingProxyType(additional_headers(env)))


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


@dataclass(frozen=True, slots=True)
class ServiceSettings:
    """The variables of service mode (Node's ``lib/service.js`` ``processService``), read once.

    Nothing is required at load: ``service.py`` reports each missing one to the platform, as Node does.
    """

    POST_RESULT_URL: str | None
    CFG: str | None
    ACTION_OR_TRIGGER: str | None
    GET_MODEL_METHOD: str | None
    COMPONENT_PATH: str
    API_URI: str | None
    API_USERNAME: str | None
    API_KEY: str | None
    # ``parseInt`` with no default in Node: NaN (unset, garbage) or 0 makes the result POST one attempt
    API_REQUEST_RETRY_ATTEMPTS: int
    API_REQUEST_RETRY_DELAY: int  # ms between attempts; 100 when unset or negative

    def secrets(self) -> list[str]:
        """The live secret values (for the log redaction filter): the API key and the password of the
        result URL (as written and decoded)."""
        out = [self.API_KEY] if self.API_KEY else []
        out.extend(url_password(self.POST_RESULT_URL))
        return out + [v.strip() for v in out if v.strip() != v]


def load_service_settings(env: Mapping[str, str] | None = None) -> ServiceSettings:
    """Read the service-mode variables (never raises: a missing one is a result to post)."""
    env = os.environ if env is None else env

    def text(key: str) -> str | None:
        return env.get(PREFIX + key) or None

    attempts = js_parse_int(env.get(PREFIX + "API_REQUEST_RETRY_ATTEMPTS"))
    delay = js_parse_int(env.get(PREFIX + "API_REQUEST_RETRY_DELAY"))
    return ServiceSettings(
        POST_RESULT_URL=text("POST_RESULT_URL"),
        CFG=text("CFG"),
        ACTION_OR_TRIGGER=text("ACTION_OR_TRIGGER"),
        GET_MODEL_METHOD=text("GET_MODEL_METHOD"),
        COMPONENT_PATH=env.get(PREFIX + "COMPONENT_PATH", ""),
        API_URI=text("API_URI"),
        API_USERNAME=text("API_USERNAME"),
        API_KEY=text("API_KEY"),
        API_REQUEST_RETRY_ATTEMPTS=max(1, attempts or 1),
        API_REQUEST_RETRY_DELAY=delay if delay is not None and delay >= 0 else 100,
    )
