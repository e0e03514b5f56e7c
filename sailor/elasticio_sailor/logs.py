"""Structured JSON log lines (bunyan shape, like the Node sailor) with secret redaction.

Every line goes through one handler whose formatter replaces each registered secret value with
``***``; the sailor registers the crypto password and IV, the API key, the object-storage token, the AMQP
password and the secret values of the step configuration (secret-looking names, the fields component.json
declares with ``"viewClass": "PasswordFieldView"``, long values). A secret is masked in every form it takes
in text: verbatim, percent-encoded once or twice (a URL, a URL inside a URL), base64-encoded (an HTTP Basic
``Authorization`` header), Python-repr-escaped (``repr(cfg)``), each also JSON-escaped. The same redactor
masks the error texts the sailor emits (``messages.format_error``). The sailor itself never logs message
bodies or cfg.

The handler sits on the root logger too, so everything a component logs — ``self.logger``, its own
``logging.getLogger(__name__)`` loggers, the root logger, the libraries it uses, ``warnings.warn`` — comes
out as one redacted JSON line at the configured level, never as plain text on stderr (Node's sailor gives
components one bunyan logger; Python components use ``logging`` the usual way).
"""

from __future__ import annotations

import base64
import datetime
import json
import logging
import os
import re
import socket
import sys
import threading
import urllib.parse
from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from contextvars import ContextVar
from pathlib import Path
from typing import IO, Any

from .component import component_root
from .crypto import dumps

LEVELS = {"trace": 5, "debug": 10, "info": 20, "warn": 30, "warning": 30, "error": 40, "fatal": 50}
BUNYAN = {5: 10, 10: 20, 20: 30, 30: 40, 40: 50, 50: 60}
logging.addLevelName(5, "TRACE")

# cfg keys whose values are redacted whatever their length
_SECRET_KEY = re.compile(r"secret|password|passwd|token|key|credential|auth|session", re.IGNORECASE)
# the keys among those that name a secret beyond doubt ("keyField", "authType" or "sessionMode" do not): their
# values, the platform's secrets and the fields component.json declares secret are masked in every form and
# in emitted errors too (Redactor.strict); the other values the logs mask are masked verbatim, in logs only
_STRICT_KEY = re.compile(r"secret|password|passwd|token|credential|api_?key|access_?key|private_?key",
                         re.IGNORECASE)
# keys that name the public identifier of an access or API key, not the key ("accessKeyId", "api_key_id"): their
# values are masked as a precaution in logs only, so an error can still say which key to fix. Only these: an
# "...Id" can be a secret too (Vault's AppRole "secret_id")
_ID_KEY = re.compile(r"(?:access|api)[_-]?key[_-]?id$", re.IGNORECASE)
_MIN_PLAIN_LEN = 8  # other string values of cfg this long are redacted too (they may be secrets)
_MIN_SECRET_LEN = 3  # shorter values are not masked: they would mask noise
# values shorter than this are masked only where they stand as words of their own: no letter, digit, "_",
# "+" or "-" touches them (an External ID of 3 characters, "123", must not cut up every account id)
_WORD_ONLY_BELOW = 4
_WORD_EDGE = "A-Za-z0-9_+-"
# where such a word may start: after no word character, or right after an escape, which ends in a letter or
# digit but is not part of the word: a JSON escape of the finished log line ("\n", "\t", "\u001b") or a
# percent-escape, once or twice ("%3D" in a URL's query, "%253D" in a URL inside a URL's query)
_WORD_START = (rf"(?:(?<![{_WORD_EDGE}])|(?<=\\[bfnrt])|(?<=\\u[0-9A-Fa-f]{{4}})|(?<=%[0-9A-Fa-f]{{2}})"
               rf"|(?<=%25[0-9A-Fa-f]{{2}}))")
# how elastic.io marks a secret field in component.json (credentials and trigger/action fields)
PASSWORD_VIEW = "PasswordFieldView"
# what requests leaves unescaped when it requotes a URL (requests.utils.requote_uri)
_URI_SAFE = "!#$%&'()*+,/:;=?@[]~"
_PERCENT_ESCAPE = re.compile(r"%[0-9A-F]{2}")

_CONTEXT_VARS = (
    "API_USERNAME", "COMP_ID", "COMP_NAME", "CONTAINER_ID", "CONTRACT_ID", "EXEC_ID", "EXEC_TYPE",
    "EXECUTION_RESULT_ID", "FLOW_ID", "FLOW_VERSION", "FUNCTION", "STEP_ID", "TASK_USER_EMAIL",
    "TENANT_ID", "USER_ID", "WORKSPACE_ID",
)


def secret_forms(value: str) -> set[str]:
    """Every form ``value`` takes in a log line or an error text, computed once when it is registered.

    Verbatim; percent-encoded as a query parameter or path segment (``quote``/``quote_plus``, upper- and
    lower-case escapes) or requoted in a whole URL (as urllib3 logs it at debug, or an HTTPError quotes
    it), and percent-encoded twice (a URL carried in another URL's query); base64-encoded (:func:`base64_cores`);
    Python-repr-escaped (``repr(cfg)``: backslashes doubled, quotes escaped when the enclosing repr uses
    that quote; ``bytes`` reprs too); and each of those JSON-escaped, since log lines are JSON text.
    """
    forms = {value}
    for quoted in (urllib.parse.quote(value, safe=""), urllib.parse.quote(value, safe="/"),
                   urllib.parse.quote(value, safe=_URI_SAFE), urllib.parse.quote_plus(value, safe=""),
                   urllib.parse.quote_plus(value, safe="/")):
        forms.add(quoted)
        forms.add(_PERCENT_ESCAPE.sub(lambda m: m.group(0).lower(), quoted))
        forms.add(urllib.parse.quote(quoted, safe=""))
    for core in base64_cores(value):
        forms.update((core, urllib.parse.quote(core, safe="")))
    # repr of a text containing '"' always uses single quotes, so this escapes ' (as a repr does when the
    # enclosing string holds both quotes); dropping that escape gives the form inside a "…" repr
    in_single = repr(value + '"')[1:-2]
    forms.add(in_single)
    forms.add(in_single.replace("\\'", "'"))
    as_bytes = repr((value + '"').encode("utf-8", "surrogatepass"))[2:-2]
    forms.add(as_bytes)
    forms.add(as_bytes.replace("\\'", "'"))
    forms.update([dumps(f).decode("utf-8")[1:-1] for f in forms])
    return {f for f in forms if len(f) >= _MIN_SECRET_LEN}


_MIN_BASE64_CORE = 8  # shorter cores (secrets under 8 bytes) could match ordinary base64 text


def base64_cores(value: str) -> set[str]:
    """The part of ``value``'s base64 encoding that does not depend on what surrounds it, standard and URL-safe
    alphabets, for each of the three places it can start in a 3-byte group (``Basic dXNlcjpzM2NyZXQ=`` encodes
    ``user:`` and the secret together). Base64 turns every 3 bytes into 4 characters, so the bytes of
    ``value`` from its first group boundary to its last encode the same whatever comes before or after;
    masking that core leaves at most 3 characters on each side, which carry at most 2 of its bytes each."""
    raw = value.encode("utf-8", "surrogatepass")
    cores: set[str] = set()
    for offset in range(3):
        whole = raw[offset:][: (len(raw) - offset) // 3 * 3]
        core = base64.b64encode(whole).decode("ascii")
        if len(core) >= _MIN_BASE64_CORE:
            cores.update((core, base64.urlsafe_b64encode(whole).decode("ascii")))
    return cores


def declared_secret_fields(definition: Any) -> set[str]:
    """Names of the fields component.json marks secret (``"viewClass": "PasswordFieldView"``): the
    credentials fields and the fields of every trigger and action."""
    names: set[str] = set()
    if not isinstance(definition, Mapping):
        return names
    sections: list[Any] = [definition.get("credentials")]
    for kind in ("triggers", "actions"):
        entries = definition.get(kind)
        if isinstance(entries, Mapping):
            sections.extend(entries.values())
    for section in sections:
        fields = section.get("fields") if isinstance(section, Mapping) else None
        if isinstance(fields, Mapping):
            names.update(str(name) for name, spec in fields.items()
                         if isinstance(spec, Mapping) and spec.get("viewClass") == PASSWORD_VIEW)
    return names


class Redactor:
    """Replaces registered secret strings in text; thread-safe to extend. One precompiled pattern per use:
    masking a line costs one regex pass, whatever was registered.

    Two kinds of values. *Strict* secrets (the platform's secrets, cfg values under unmistakably secret keys
    or in fields component.json declares secret) are masked in every form of :func:`secret_forms`, in log
    lines (``redactor(text)``) and in emitted errors (:meth:`strict`). The other cfg values the logs mask as
    a precaution (any string of 8+ characters, values under keys like ``authType``) are masked verbatim and
    JSON-escaped, in log lines only: masking them in an error event would rewrite the ordinary words and
    data an error reports (a field name, an object type, a response body), which the next step reads."""

    def __init__(self) -> None:
        self._secrets: set[str] = set()  # registered values
        self._forms: set[str] = set()  # the forms masked in log lines
        self._strict_forms: set[str] = set()  # the forms masked in emitted errors too
        self._strict_secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self._strict_pattern: re.Pattern[str] | None = None
        self._fields: frozenset[str] = frozenset()  # cfg keys declared secret by component.json
        # short cfg values not registered yet, by key: a field declared secret later masks them then
        self._unregistered: dict[str, set[str]] = {}
        self._lock = threading.RLock()

    def add(self, values: Iterable[str], *, strict: bool = True) -> None:
        """Register secret values (empty and very short strings are ignored: they would mask noise);
        ``strict=False`` for values masked as a precaution only (verbatim, in log lines)."""
        with self._lock:
            added = strict_added = False
            for v in values:
                if not isinstance(v, str) or len(v) < _MIN_SECRET_LEN:
                    continue
                if strict and v not in self._strict_secrets:
                    self._strict_secrets.add(v)
                    self._secrets.add(v)
                    forms = secret_forms(v)
                    self._strict_forms.update(forms)
                    self._forms.update(forms)
                    added = strict_added = True
                elif not strict and v not in self._secrets:
                    self._secrets.add(v)
                    self._forms.update(f for f in (v, dumps(v).decode("utf-8")[1:-1]) if len(f) >= _MIN_SECRET_LEN)
                    added = True
            if added:
                self._pattern = _alternatives(self._forms)
            if strict_added:
                self._strict_pattern = _alternatives(self._strict_forms)

    def discard(self, values: Iterable[str]) -> None:
        """Stop masking strict secrets registered by :meth:`add` that are worth nothing any more (a rotated
        session's keys, which a component registered at run time): their forms leave both patterns, unless
        another registered value has the same form."""
        with self._lock:
            gone = {v for v in values if v in self._strict_secrets}
            if not gone:
                return
            self._strict_secrets -= gone
            self._secrets -= gone
            self._strict_forms = set().union(*map(secret_forms, self._strict_secrets)) if self._strict_secrets \
                else set()
            loose = self._secrets - self._strict_secrets
            self._forms = self._strict_forms | {f for v in loose for f in (v, dumps(v).decode("utf-8")[1:-1])
                                                if len(f) >= _MIN_SECRET_LEN}
            self._pattern = _alternatives(self._forms) if self._forms else None
            self._strict_pattern = _alternatives(self._strict_forms) if self._strict_forms else None

    def add_config(self, cfg: Any) -> None:
        """Register the secret values of a component configuration (:func:`config_secrets`, with the
        fields the component declares secret): strict ones, and the rest as a precaution."""
        with self._lock:
            rest: list[tuple[str, str]] = []
            loose: list[tuple[str, str]] = []
            found = config_secrets(cfg, fields=self._fields, rest=rest, loose=loose)
            for key, value in rest + loose:  # a field declared secret later makes these strict
                self._unregistered.setdefault(key, set()).add(value)
            self.add(found)
            self.add((value for _, value in loose), strict=False)

    def declare_fields(self, names: Iterable[str]) -> None:
        """cfg keys whose values are secrets whatever their length (from then on, and for the configs
        registered before)."""
        with self._lock:
            new = set(names) - self._fields
            if not new:
                return
            self._fields = self._fields | new
            self.add([v for name in new for v in self._unregistered.pop(name, ())])

    def declare_component(self, root: str | os.PathLike[str]) -> None:
        """Declare the secret fields of the component at ``root`` (its component.json; none when it
        cannot be read — the sailor reports that when it loads the component)."""
        try:
            with open(Path(root) / "component.json", encoding="utf-8") as fh:
                definition = json.load(fh)
        except (OSError, ValueError):
            return
        self.declare_fields(declared_secret_fields(definition))

    def __call__(self, text: str) -> str:
        """``text`` (a log line) with every registered value masked."""
        pattern = self._pattern
        return pattern.sub("***", text) if pattern is not None else text

    def strict(self, text: str) -> str:
        """``text`` (an emitted error's text) with the strict secrets masked, in every form."""
        pattern = self._strict_pattern
        return pattern.sub("***", text) if pattern is not None else text


def _alternatives(forms: AbstractSet[str]) -> re.Pattern[str]:
    """One pattern for all ``forms``, longest first; a form shorter than :data:`_WORD_ONLY_BELOW` matches only
    where it stands as a word of its own (a 3-character secret is not cut out of an ARN or an operation name)."""
    return re.compile("|".join(re.escape(s) if len(s) >= _WORD_ONLY_BELOW
                               else rf"{_WORD_START}{re.escape(s)}(?![{_WORD_EDGE}])"
                               for s in sorted(forms, key=len, reverse=True)))


def config_secrets(
    cfg: Any, key: str = "", fields: AbstractSet[str] = frozenset(),
    rest: list[tuple[str, str]] | None = None, loose: list[tuple[str, str]] | None = None,
) -> list[str]:
    """String leaves of ``cfg`` under secret-looking keys or the keys in ``fields``, and any string leaf
    of 8+ characters. The other leaves long enough to mask go to ``rest`` as (key, value).

    With ``loose``, only the leaves under unmistakably secret keys (``_STRICT_KEY``) or in ``fields`` are
    returned; the other ones above go to ``loose`` as (key, value) (see :class:`Redactor`)."""
    out: list[str] = []
    if isinstance(cfg, Mapping):
        for k, v in cfg.items():
            out.extend(config_secrets(v, str(k), fields, rest, loose))
    elif isinstance(cfg, list):
        for v in cfg:
            out.extend(config_secrets(v, key, fields, rest, loose))
    elif isinstance(cfg, str):
        if key in fields or (_STRICT_KEY.search(key) and not _ID_KEY.search(key) if loose is not None
                             else _SECRET_KEY.search(key)):
            out.append(cfg)
        elif loose is not None and (_SECRET_KEY.search(key) or len(cfg) >= _MIN_PLAIN_LEN):
            loose.append((key, cfg))
        elif loose is None and len(cfg) >= _MIN_PLAIN_LEN:
            out.append(cfg)
        elif rest is not None and len(cfg) >= _MIN_SECRET_LEN:
            rest.append((key, cfg))
    return out


REDACTOR = Redactor()


def clip(text: object, limit: int) -> str:
    """``str(text)`` with every registered value masked, then cut to ``limit`` characters (for the reasons and
    answers quoted in log lines and errors). In that order: a secret cut in two no longer matches, and the
    part before the cut would show."""
    return REDACTOR(str(text))[:limit]

# threadId/messageId/parentMessageId of the message being processed in this thread (or greenlet): added
# to every line logged meanwhile, whichever logger wrote it (set by executor.run_function)
LOG_CONTEXT: ContextVar[Mapping[str, Any] | None] = ContextVar("elasticio_sailor_log_context", default=None)

# loggers of the sailor itself; every other logger belongs to the component (its modules, its libraries)
_SAILOR_LOGGERS = ("sailor", "pika", "elasticio_sailor")


def _is_sailor_logger(name: str) -> bool:
    return any(name == n or name.startswith(n + ".") for n in _SAILOR_LOGGERS)

_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class BunyanFormatter(logging.Formatter):
    """One JSON object per record: name, hostname, pid, level, msg, time, v, context and extras."""

    def __init__(self, context: Mapping[str, Any], redactor: Redactor) -> None:
        super().__init__()
        self._base = {"hostname": socket.gethostname(), "pid": os.getpid()}
        self._context = dict(context)
        self._redact = redactor

    def format(self, record: logging.LogRecord) -> str:
        name = record.name
        line: dict[str, Any] = {"name": "sailor" if _is_sailor_logger(name) else "component"}
        line.update(self._base)
        line["level"] = BUNYAN.get(record.levelno, 30)
        line.update(self._context)
        if line["name"] == "component" and name != "component":
            line["logger"] = name or "root"  # which of the component's loggers wrote it
        for k, v in record.__dict__.items():
            if k not in _RESERVED and not k.startswith("_"):
                line[k] = v
        message_context = LOG_CONTEXT.get()
        if message_context:
            for k, v in message_context.items():
                line.setdefault(k, v)
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            # name and message only: a traceback can quote local variables' values
            line["err"] = {"name": type(exc).__name__, "message": str(exc)}
        line["msg"] = record.getMessage()
        line["time"] = (
            datetime.datetime.fromtimestamp(record.created, datetime.UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z")
        )
        line["v"] = 0
        try:
            text = dumps(line).decode("utf-8")
        except TypeError:
            text = dumps({k: str(v) for k, v in line.items()}).decode("utf-8")
        return self._redact(text)


def level_from_env(env: Mapping[str, str]) -> int:
    """``LOG_LEVEL`` as a bunyan name or number; default info."""
    raw = (env.get("LOG_LEVEL") or "info").strip().lower()
    if raw in LEVELS:
        return LEVELS[raw]
    if raw.isdigit():
        inverse = {b: p for p, b in BUNYAN.items()}
        return inverse.get(int(raw), 20)
    return 20


def setup_logging(env: Mapping[str, str] | None = None, stream: IO[str] | None = None) -> None:
    """Route every logger — the sailor's, ``component`` and the root logger (so every module logger and
    ``warnings.warn`` of the component) — to one redacting JSON handler on stdout, at ``LOG_LEVEL``."""
    env = os.environ if env is None else env
    # Node's (lib/logging.js): the variables under their own names, and the flow id again as ``tag``
    context = {k: v for k in ("ELASTICIO_" + c for c in _CONTEXT_VARS) if (v := env.get(k))}
    if env.get("ELASTICIO_FLOW_ID"):
        context["tag"] = env["ELASTICIO_FLOW_ID"]
    # the fields the component declares secret (flow-step and service mode: the component root is the
    # CWD joined with ELASTICIO_COMPONENT_PATH, as ComponentReader finds it)
    REDACTOR.declare_component(component_root(env.get("ELASTICIO_COMPONENT_PATH", "")))
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(BunyanFormatter(context, REDACTOR))
    level = level_from_env(env)
    for name in ("sailor", "component"):
        lg = logging.getLogger(name)
        lg.handlers[:] = [handler]
        lg.setLevel(level)
        lg.propagate = False
    # The component's own loggers (logging.getLogger(__name__), the root logger, its libraries) propagate
    # to the root logger: without a handler there, INFO would be dropped and WARNING+ printed by logging's
    # last-resort handler as plain, unredacted text on stderr. Handlers installed before (none in a
    # sailor process) are replaced: a plain-text handler there would bypass the redaction.
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.captureWarnings(True)  # warnings.warn → logger "py.warnings" → one JSON line
    # pika logs connection details at INFO; only its problems matter here
    pika_logger = logging.getLogger("pika")
    pika_logger.handlers[:] = [handler]
    pika_logger.setLevel(logging.ERROR if level <= 30 else level)
    pika_logger.propagate = False


log = logging.getLogger("sailor")
