"""Structured JSON log lines (bunyan shape, like the Node sailor) with secret redaction.

Every line goes through one handler whose formatter replaces each registered secret value with
``***``; the sailor registers the crypto password, the API key, the AMQP password and the secret-looking
values of the step configuration. The sailor itself never logs message bodies or cfg.

The handler sits on the root logger too, so everything a component logs — ``self.logger``, its own
``logging.getLogger(__name__)`` loggers, the root logger, the libraries it uses, ``warnings.warn`` — comes
out as one redacted JSON line at the configured level, never as plain text on stderr (Node's sailor gives
components one bunyan logger; Python components use ``logging`` the usual way).
"""

from __future__ import annotations

import datetime
import logging
import os
import re
import socket
import sys
import threading
from collections.abc import Iterable, Mapping
from contextvars import ContextVar
from typing import IO, Any

from .crypto import dumps

LEVELS = {"trace": 5, "debug": 10, "info": 20, "warn": 30, "warning": 30, "error": 40, "fatal": 50}
BUNYAN = {5: 10, 10: 20, 20: 30, 30: 40, 40: 50, 50: 60}
logging.addLevelName(5, "TRACE")

# cfg keys whose values are redacted whatever their length
_SECRET_KEY = re.compile(r"secret|password|passwd|token|key|credential|auth|session", re.IGNORECASE)
_MIN_PLAIN_LEN = 8  # other string values of cfg this long are redacted too (they may be secrets)

_CONTEXT_VARS = (
    "API_USERNAME", "COMP_ID", "COMP_NAME", "CONTAINER_ID", "CONTRACT_ID", "EXEC_ID", "EXEC_TYPE",
    "EXECUTION_RESULT_ID", "FLOW_ID", "FLOW_VERSION", "FUNCTION", "STEP_ID", "TASK_USER_EMAIL",
    "TENANT_ID", "USER_ID", "WORKSPACE_ID",
)


class Redactor:
    """Replaces registered secret strings in text; thread-safe to extend."""

    def __init__(self) -> None:
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self._lock = threading.Lock()

    def add(self, values: Iterable[str]) -> None:
        """Register secret values (empty and very short strings are ignored: they would mask noise)."""
        with self._lock:
            for v in values:
                if isinstance(v, str) and len(v) >= 3:
                    self._secrets.add(v)
                    # JSON-escaped form too, since lines are JSON text
                    esc = dumps(v).decode("utf-8")[1:-1]
                    if esc != v:
                        self._secrets.add(esc)
            if self._secrets:
                alts = sorted(self._secrets, key=len, reverse=True)
                self._pattern = re.compile("|".join(re.escape(s) for s in alts))

    def add_config(self, cfg: Any) -> None:
        """Register the secret-looking values of a component configuration."""
        self.add(config_secrets(cfg))

    def __call__(self, text: str) -> str:
        pattern = self._pattern
        return pattern.sub("***", text) if pattern is not None else text


def config_secrets(cfg: Any, key: str = "") -> list[str]:
    """String leaves of ``cfg`` under secret-looking keys, and any string leaf of 8+ characters."""
    out: list[str] = []
    if isinstance(cfg, Mapping):
        for k, v in cfg.items():
            out.extend(config_secrets(v, str(k)))
    elif isinstance(cfg, list):
        for v in cfg:
            out.extend(config_secrets(v, key))
    elif isinstance(cfg, str) and (_SECRET_KEY.search(key) or len(cfg) >= _MIN_PLAIN_LEN):
        out.append(cfg)
    return out


REDACTOR = Redactor()

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
    context = {
        k[len("ELASTICIO_"):].lower(): v
        for k in ("ELASTICIO_" + c for c in _CONTEXT_VARS)
        if (v := env.get(k))
    }
    # Node's keys are camelCase-free upper names lowered; keep them readable and stable.
    if env.get("ELASTICIO_FLOW_ID"):
        context["tag"] = env["ELASTICIO_FLOW_ID"]
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
