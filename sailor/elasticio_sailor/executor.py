"""Running one component function on one message: the ``self`` it gets and the outcome → events rules.

This is the part every transport shares (AMQP flow step, local runner): ``run_function`` calls
``process(self, msg, cfg, snapshot)`` and turns its outcome into events handed to an ``EventHandler``.
Node 2.7.8: ``lib/executor.js`` (``TaskExec``) and ``lib/emitter.js``; docs/platform-contract.md §6.6, §6.10.
"""

from __future__ import annotations

import asyncio
import copy
import inspect
import logging
import threading
from collections.abc import Mapping
from types import MappingProxyType, ModuleType
from typing import Any, Protocol

from .crypto import dumps, loads
from .logs import LOG_CONTEXT
from .messages import Rebound

try:  # optional, for SAILOR_CONCURRENCY=greenlet
    import greenlet as _greenlet
    from greenlet import GreenletExit as _GreenletExit
except ImportError:  # pragma: no cover
    _greenlet = None  # type: ignore[assignment]
    _GreenletExit = None  # type: ignore[assignment,misc]

# The events a component can emit, each with the name of the handler method that handles it
# (``method(ctx, payload)``): the one list of events — TaskContext ignores any other name. Adding an
# event is a row here and that method on the flow step's ``MessageExecution`` (checked at import).
EVENT_HANDLERS: Mapping[str, str] = MappingProxyType({
    "data": "on_data",
    "error": "on_error",
    "rebound": "on_rebound",
    "snapshot": "on_snapshot",
    "updateSnapshot": "on_update_snapshot",
    "updateKeys": "on_update_keys",
    "httpReply": "on_http_reply",
    "end": "on_end",
})
EVENTS = frozenset(EVENT_HANDLERS)

log = logging.getLogger("sailor")


class EventHandler(Protocol):
    """Receives the events of one execution; returns when the event is fully handled."""

    def on_event(self, ctx: TaskContext, event: str, payload: Any) -> None:
        """Handle ``event`` (one of :data:`EVENTS`)."""
        ...


def deep_copy(value: Any) -> Any:
    """Deep copy of JSON data (a JSON round trip is several times faster than copy.deepcopy)."""
    try:
        return loads(dumps(value))
    except (TypeError, ValueError):
        return copy.deepcopy(value)


_COMPONENT_LOGGER = logging.getLogger("component")


class ContextLogger(logging.Logger):
    """A ``logging.Logger`` for one execution: records go to the ``component`` logger's handlers and
    carry the message context (threadId, messageId, parentMessageId). Not registered in the logging
    manager, so one per message costs nothing once the message is done."""

    def __init__(self, context: dict[str, Any]) -> None:
        super().__init__("component")
        self.parent = _COMPONENT_LOGGER
        self._context = context

    def makeRecord(self, *args: Any, **kwargs: Any) -> logging.LogRecord:  # logging's own method name
        record = super().makeRecord(*args, **kwargs)
        for key, value in self._context.items():
            record.__dict__.setdefault(key, value)
        return record


class TaskContext:
    """The ``self`` of ``process``: ``emit``, ``logger``, ``message_id``, ``get_flow_variables()``."""

    def __init__(
        self,
        handler: EventHandler,
        *,
        message_id: str | None = None,
        variables: dict[str, Any] | None = None,
        log_context: dict[str, Any] | None = None,
    ) -> None:
        self._handler = handler
        self.message_id = message_id
        self._variables = variables or {}
        self.error_count = 0
        self.ended = False
        self._log_context = log_context or {}
        self._logger: logging.Logger | None = None

    @property
    def logger(self) -> logging.Logger:
        """A ``logging.Logger`` carrying the message context (made on first use: most messages never log)."""
        if self._logger is None:
            self._logger = ContextLogger(self._log_context)
        return self._logger

    def get_flow_variables(self) -> dict[str, Any]:
        """A copy of the flow variables of the step document."""
        return copy.deepcopy(self._variables)

    # Node's name, for components ported from JavaScript
    getFlowVariables = get_flow_variables

    def emit(self, event: str, payload: Any = None) -> None:
        """Handle one event. In flow-step mode ``error``/``rebound`` return once the broker confirmed them;
        ``data``/``snapshot``/``updateSnapshot``/``httpReply`` once their publish is queued in order
        (the input is acked only after every confirm; a failed publish becomes an error and a reject).

        Unknown events are ignored; a second ``end`` is ignored with a warning.
        """
        if event not in EVENTS:
            log.warning("Unknown event ignored", extra={"event": str(event)[:64]})
            return
        if event == "end":
            if self.ended:
                log.warning("end was emitted more than once; ignored")
                return
            self.ended = True
        elif event == "error":
            # counted before handling, so error-then-end always rejects (Node does the same)
            self.error_count += 1
        self._handler.on_event(self, event, payload)


def run_function(
    module: ModuleType, ctx: TaskContext, msg: dict[str, Any], cfg: dict[str, Any], snapshot: Any
) -> None:
    """Call ``module.process`` and emit its outcome, always finishing with exactly one ``end``.

    Meanwhile every log line of this thread (or greenlet), from any logger, carries the message context.
    """
    token = LOG_CONTEXT.set(ctx._log_context or None)
    try:
        _run_function(module, ctx, msg, cfg, snapshot)
    finally:
        LOG_CONTEXT.reset(token)


def _run_function(
    module: ModuleType, ctx: TaskContext, msg: dict[str, Any], cfg: dict[str, Any], snapshot: Any
) -> None:
    process = getattr(module, "process", None)
    if not callable(process):
        ctx.emit("error", {"name": "Error", "message": "Process function is not found"})
        ctx.emit("end")
        return
    try:
        result = awaited(process(ctx, msg, cfg, snapshot))
    except Rebound as reason:
        ctx.emit("rebound", reason)
    except Exception as exc:  # noqa: BLE001 - any component failure becomes an error event
        ctx.emit("error", exc)
    except BaseException as exc:
        # SystemExit, a stray CancelledError/GeneratorExit, …: on a worker thread (or message greenlet) it
        # would end that thread silently, leaving the delivery unsettled; it is a component error like any
        # other. Only what stops the process itself propagates (see ``propagates``).
        if propagates(exc):
            raise
        log.error("Component raised a BaseException that is not an Exception; handled as an error",
                  extra={"exception": type(exc).__name__})
        ctx.emit("error", exc)
    else:
        if result:
            try:
                ctx.emit("data", result)
            except Exception as exc:  # noqa: BLE001 - the returned value cannot be published: an error (Node: onError)
                ctx.emit("error", exc)
    if not ctx.ended:  # a component that emitted end itself gets no warning for this one (Node adds none)
        ctx.emit("end")


def propagates(exc: BaseException) -> bool:
    """Whether a non-``Exception`` raised by component code must not be turned into an error event:
    ``KeyboardInterrupt`` on the main thread (Ctrl-C in the local runner: the process is stopping) and
    ``GreenletExit`` inside a message greenlet (greenlet mode: the greenlet is being killed, nothing can run
    in it any more). Raised on a worker thread (threads mode, no greenlet of ours), ``GreenletExit`` is an
    ordinary component error."""
    if isinstance(exc, KeyboardInterrupt):
        return threading.current_thread() is threading.main_thread()
    return _GreenletExit is not None and isinstance(exc, _GreenletExit) and in_spawned_greenlet()


def in_spawned_greenlet() -> bool:
    """Whether this code runs in a greenlet spawned by the sailor's greenlet pool (not a thread's own)."""
    return _greenlet is not None and _greenlet.getcurrent().parent is not None


def call_hook(module: ModuleType, name: str, *args: Any) -> tuple[bool, Any]:
    """Call an optional module-level hook; ``(False, None)`` when the module does not define it."""
    fn = getattr(module, name, None)
    if not callable(fn):
        return False, None
    return True, awaited(fn(*args))


def awaited(result: Any) -> Any:
    """``result``, or what it resolves to when it is awaitable: a component function may be ``async def``
    (as a Node component's may return a promise). The coroutine runs to completion on an event loop of its
    own, in the calling thread: a worker thread in the default mode (in greenlet mode that is the I/O
    thread, which it holds meanwhile, as any blocking component code does)."""
    if not inspect.isawaitable(result):
        return result

    async def outcome() -> Any:
        return await result

    return asyncio.run(outcome())
