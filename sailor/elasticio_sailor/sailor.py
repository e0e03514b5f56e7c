"""Flow-step mode: connect, fetch the step, load the component, run hooks, consume until SIGTERM.

One ``MessageExecution`` per delivery turns the component's events into AMQP publishes (data, error,
rebound, snapshot, httpReply) exactly as the Node sailor 2.7.8 formats them (§4.6, §5.3, §6 of the
protocol notes) and settles the delivery at ``end``: reject if an error was emitted, else ack.
``data``/``snapshot``/``updateSnapshot``/``httpReply`` emits return once their publish is handed to
the I/O thread (in order); the ack waits for every confirm, and a publish that finally fails becomes an
error event and a reject. ``error`` and ``rebound`` emits return once confirmed.
"""

from __future__ import annotations

import base64
import copy
import logging
import os
import queue
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable
from types import FrameType, ModuleType
from typing import Any, TypeVar

import pika

try:  # optional, for SAILOR_CONCURRENCY=greenlet
    import greenlet as _greenlet
except ImportError:  # pragma: no cover
    _greenlet = None

from . import objectstorage as lw
from .amqp import AmqpError, AmqpTransport, Delivery, PublishFuture, unusable_routing_key
from .api import ApiClient, ApiError
from .component import ComponentError, ComponentReader, component_root
from .crypto import DecryptError, MessageCipher, dumps, loads
from .executor import TaskContext, call_hook, run_function
from .logs import REDACTOR
from .messages import (
    ERROR_RESPONSE_HEADER,
    amqp_headers,
    format_error,
    incoming_headers,
    now_ms,
    outgoing_headers,
    pop_routing_key,
    rebound_expiration,
    rebound_iteration,
)
from .settings import Settings
from .wire import MessageProperties

log = logging.getLogger("sailor")
T = TypeVar("T")

MAX_WORKERS = 64  # worker threads beyond this only add memory; deliveries queue for a free worker
# Unconfirmed non-blocking publishes per message; a component emitting in a loop waits for the oldest
# confirm beyond this, so memory stays bounded (the synchronous emit's back-pressure, in batches).
MAX_UNCONFIRMED = 64


class Throttle:
    """At most ``limit`` calls per ``interval_ms`` window; excess callers wait (p-throttle's algorithm)."""

    def __init__(
        self, limit: float, interval_ms: float, *, clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.limit = limit
        self.interval = interval_ms / 1000.0
        self._clock = clock
        self._sleep = sleep
        self._tick = 0.0
        self._count = 0
        self._lock = threading.Lock()

    def acquire(self) -> None:
        """Block until this call's slot in the rate window."""
        with self._lock:
            now = self._clock()
            if now - self._tick > self.interval:
                self._count = 1
                self._tick = now
                return
            if self._count < self.limit:
                self._count += 1
            else:
                self._tick += self.interval
                self._count = 1
            delay = self._tick - now
        if delay > 0:
            self._sleep(delay)


class WorkerPool:
    """Fixed worker threads fed by one ``queue.SimpleQueue`` (C-level, no per-task Future objects)."""

    def __init__(self, size: int) -> None:
        self._queue: queue.SimpleQueue[tuple[Callable[..., None], tuple[Any, ...]] | None] = queue.SimpleQueue()
        self._threads = [threading.Thread(target=self._work, name=f"sailor-worker-{i}", daemon=True)
                         for i in range(size)]
        for t in self._threads:
            t.start()

    def submit(self, fn: Callable[..., None], *args: Any) -> None:
        """Run ``fn(*args)`` on a worker (errors are logged: callers handle their own failures)."""
        self._queue.put((fn, args))

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            fn, args = item
            try:
                fn(*args)
            except Exception as exc:
                log.error("Worker task failed", exc_info=exc)

    def sleep(self, delay_s: float) -> None:
        """Throttle waits block the calling worker."""
        time.sleep(delay_s)

    def run_blocking(self, fn: Callable[[], T]) -> T:
        """Blocking I/O (object storage) simply runs on the calling worker."""
        return fn()

    def shutdown(self) -> None:
        """Finish queued tasks, then stop every worker."""
        for _ in self._threads:
            self._queue.put(None)
        for t in self._threads:
            t.join()


class GreenletPool:
    """Single-threaded concurrency: each message runs in a greenlet on the AMQP I/O thread.

    A synchronous ``emit`` gives the loop back while it waits for its confirm, so up to ``prefetch``
    messages are in flight with no thread hand-offs at all (the fastest mode for components that do
    not block). A component that blocks (``time.sleep``, blocking HTTP) blocks every message and the
    AMQP heartbeats for that long: use the default thread mode for those.
    """

    def __init__(self, transport: AmqpTransport) -> None:
        if _greenlet is None:
            raise RuntimeError("SAILOR_CONCURRENCY=greenlet needs the 'greenlet' package")
        self._transport = transport

    def submit(self, fn: Callable[..., None], *args: Any) -> None:
        """Start ``fn(*args)`` in a new greenlet; from a message greenlet, after the current burst."""
        assert _greenlet is not None
        current = _greenlet.getcurrent()
        if self._transport.on_io_thread() and current.parent is None:
            _greenlet.greenlet(fn).switch(*args)
        else:
            self._transport.call_soon(lambda: self.submit(fn, *args))

    def sleep(self, delay_s: float) -> None:
        """Throttle waits: suspend the message greenlet instead of the whole loop."""
        assert _greenlet is not None
        current = _greenlet.getcurrent()
        if current.parent is None:
            time.sleep(delay_s)
            return
        self._transport.call_later(delay_s, current.switch)
        current.parent.switch()

    def run_blocking(self, fn: Callable[[], T]) -> T:
        """Blocking I/O (object storage): run ``fn`` on a helper thread and suspend the message greenlet
        meanwhile, so the loop (other messages, heartbeats) goes on."""
        assert _greenlet is not None
        current = _greenlet.getcurrent()
        if current.parent is None:
            return fn()
        outcome: list[Any] = []

        def work() -> None:
            try:
                outcome.append((True, fn()))
            except BaseException as exc:  # noqa: BLE001 - re-raised in the greenlet
                outcome.append((False, exc))
            self._transport.call_soon(current.switch)

        threading.Thread(target=work, name="sailor-blocking", daemon=True).start()
        while not outcome:
            current.parent.switch()
        ok, value = outcome[0]
        if not ok:
            raise value
        return value  # type: ignore[no-any-return]

    def shutdown(self) -> None:
        """Nothing to join: greenlets end with their message."""


def deep_copy(value: Any) -> Any:
    """Deep copy of JSON data (a JSON round trip is several times faster than copy.deepcopy)."""
    try:
        return loads(dumps(value))
    except (TypeError, ValueError):
        return copy.deepcopy(value)


def protocol_version(headers: dict[str, Any]) -> int:
    """Incoming encoding: ``Number(protocolVersion || 1)`` — below 2 means base64 text."""
    raw = headers.get("protocolVersion") or 1
    try:
        return int(raw)
    except (TypeError, ValueError):
        return 1


class FlowStep:
    """The long-running sailor of one flow step."""

    def __init__(self, settings: Settings, concurrency: str = "threads") -> None:
        if concurrency not in ("threads", "greenlet"):
            raise ValueError("SAILOR_CONCURRENCY must be 'threads' or 'greenlet'")
        if concurrency == "greenlet" and _greenlet is None:
            raise ValueError("SAILOR_CONCURRENCY=greenlet needs the 'greenlet' package")
        self.concurrency = concurrency
        self.s = settings
        v = settings.values
        self.cipher = MessageCipher(v["MESSAGE_CRYPTO_PASSWORD"], v["MESSAGE_CRYPTO_IV"])
        self.api = ApiClient(v["API_URI"], v["API_USERNAME"], v["API_KEY"])
        self.static_headers = {
            "execId": v["EXEC_ID"],
            "taskId": v["FLOW_ID"],
            "workspaceId": v["WORKSPACE_ID"],
            "containerId": v["CONTAINER_ID"],
            "userId": v["USER_ID"],
            "stepId": v["STEP_ID"],
            "compId": v["COMP_ID"],
            "function": v["FUNCTION"],
        }
        self.exchange: str = v["PUBLISH_MESSAGES_TO"]
        self.delivery_mode = 2 if v["AMQP_PERSISTENT_MESSAGES"] else 1
        self.throttles = {
            "data": Throttle(v["DATA_RATE_LIMIT"], v["RATE_INTERVAL"], sleep=self._sleep),
            "error": Throttle(v["ERROR_RATE_LIMIT"], v["RATE_INTERVAL"], sleep=self._sleep),
            "snapshot": Throttle(v["SNAPSHOT_RATE_LIMIT"], v["RATE_INTERVAL"], sleep=self._sleep),
        }
        self.step: dict[str, Any] = {}
        self.snapshot: dict[str, Any] = {}
        self.cfg: dict[str, Any] = {}
        self.reader: ComponentReader | None = None
        self.module: ModuleType | None = None
        prefetch = int(v["RABBITMQ_PREFETCH_SAILOR"])
        self.pool: WorkerPool | GreenletPool = WorkerPool(
            1 if concurrency == "greenlet" else max(1, min(prefetch, MAX_WORKERS)))
        self.transport: AmqpTransport | None = None
        self._stop = threading.Event()
        # lightweight messages (sailor-protocol §6.5, see objectstorage.py); the client is made on first use
        self.auto_resolve = True
        self._storage: lw.ObjectStorage | None = None

    # ------------------------------------------------------------------ lifecycle
    def run(self) -> int:
        """Run until SIGTERM/SIGINT; return the process exit code."""
        v = self.s.values
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        self.transport = AmqpTransport(
            v["AMQP_URI"],
            prefetch=int(v["RABBITMQ_PREFETCH_SAILOR"]),
            on_delivery=self._dispatch,
            reconnect_attempts=int(v["AMQP_RECONNECT_ATTEMPTS"]),
            reconnect_timeout_ms=v["AMQP_RECONNECT_TIMEOUT"],
            publish_retry_delay_ms=v["AMQP_PUBLISH_RETRY_DELAY"],
            publish_max_retry_delay_ms=v["AMQP_PUBLISH_MAX_RETRY_DELAY"],
            publish_retry_attempts=v["AMQP_PUBLISH_RETRY_ATTEMPTS"],
        )
        if self.concurrency == "greenlet":
            self.pool.shutdown()
            self.pool = GreenletPool(self.transport)
            self.transport.immediate = True
        try:
            self.transport.start()
        except Exception as exc:
            # nothing can be published without a connection
            log.critical("Cannot connect to AMQP", exc_info=exc)
            return 1
        try:
            self.prepare()
            self.start_hooks()
            self.transport.consume(v["LISTEN_MESSAGES_ON"])
        except Exception as exc:
            log.critical("Start-up failed", exc_info=exc)
            self.report_error(exc)
            self.transport.close()
            return 1
        log.info("Fully initialized and waiting for messages")
        while not self._stop.wait(0.5):
            if not self.transport.alive():
                log.critical("The AMQP I/O thread stopped; exiting so the platform restarts the step")
                return 1
        return self.shutdown()

    def _sleep(self, delay_s: float) -> None:
        self.pool.sleep(delay_s)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        log.info("Received signal; shutting down gracefully", extra={"signal": signum})
        self._stop.set()

    def prepare(self) -> None:
        """Fetch the step document and load component.json and the function module."""
        v = self.s.values
        self.step = self.api.get_step(v["FLOW_ID"], v["STEP_ID"])
        self.cfg = self.step.get("config") or {}
        REDACTOR.add_config(self.cfg)
        self.snapshot = self.step.get("snapshot") or {}
        self.reader = ComponentReader(component_root(v["COMPONENT_PATH"]))
        self.module = self.reader.load(v["FUNCTION"])
        # Node: `{autoResolveObjectReferences: true, ...definition}`, then a truthiness test
        # (lib/component_reader.js findTriggerOrActionDefinition, lib/sailor.js processMessage)
        self.auto_resolve = bool(self.reader.find(v["FUNCTION"]).get("autoResolveObjectReferences", True))

    def storage(self) -> lw.ObjectStorage:
        """The object-storage client (ELASTICIO_OBJECT_STORAGE_*, REQUEST_MAX_RETRY, REQUEST_TIMEOUT)."""
        if self._storage is None:
            self._storage = lw.storage_from_settings(self.s.values, self.cipher, os.environ)
        return self._storage

    def start_hooks(self) -> None:
        """``startup`` (with ELASTICIO_STARTUP_REQUIRED, result stored in the platform), then ``init``."""
        assert self.module is not None
        if self.s.STARTUP_REQUIRED:
            _, result = call_hook(self.module, "startup", deep_copy(self.cfg))
            store_startup_data(self.s, result)
        found, _ = call_hook(self.module, "init", deep_copy(self.cfg))
        if not found:
            log.debug("init hook not defined")

    def shutdown(self) -> int:
        """Stop consuming, finish in-flight messages, close; exit code 0."""
        assert self.transport is not None
        self.transport.stop_consuming()
        self.transport.wait_idle()
        self.pool.shutdown()
        self.transport.close()
        log.info("Shut down gracefully")
        return 0

    def report_error(self, exc: BaseException) -> None:
        """Publish a start-up error (no errorInput) to the error routing key, best effort."""
        if self.transport is None:
            return
        headers = dict(self.s.additional_headers)
        headers.update(self.static_headers)
        headers["messageId"] = str(uuid.uuid4())
        try:
            body, _ = error_envelope(self.cipher, format_error(exc), None, 1)
            self.transport.publish(self.exchange, self.s.ERROR_ROUTING_KEY, body,
                                   self.props(headers)).wait(10)
        except Exception as err:
            log.error("Could not publish the start-up error", exc_info=err)

    # ------------------------------------------------------------------ per message
    def props(self, headers: dict[str, Any]) -> pika.BasicProperties:
        """Properties of data/error/snapshot/httpReply publishes (§4.5)."""
        return MessageProperties(
            content_type="application/json",
            content_encoding="utf8",
            delivery_mode=self.delivery_mode,
            headers=amqp_headers(headers),
        )

    def _dispatch(self, delivery: Delivery) -> None:
        self.pool.submit(self.process_delivery, delivery)

    def process_delivery(self, delivery: Delivery) -> None:
        """Decode, run the function, publish its events, settle (runs on a worker thread)."""
        assert self.transport is not None
        try:
            MessageExecution(self, delivery).run()
        except Exception as exc:
            log.error("Message processing failed inside the sailor", exc_info=exc)
            self.transport.settle(delivery, False)


def error_envelope(
    cipher: MessageCipher, err: dict[str, Any], incoming_body: bytes | None, incoming_pv: int
) -> tuple[bytes, str]:
    """``{"error": b64, "errorInput": b64}`` (§6.7) and the bare ``error`` string.

    ``errorInput`` is always base64 text: the incoming body as is for protocol 1; for protocol 2 the
    same ciphertext base64-encoded (Node decrypts and re-encrypts it, which gives the same bytes).
    """
    encrypted = cipher.encrypt_b64(err)
    envelope: dict[str, str] = {"error": encrypted}
    if incoming_body is not None:
        if incoming_pv >= 2:
            envelope["errorInput"] = base64.b64encode(incoming_body).decode("ascii")
        else:
            envelope["errorInput"] = incoming_body.decode("utf-8", "replace")
    return dumps(envelope), encrypted


class MessageExecution:
    """Events of one delivery → AMQP publishes; settles the delivery at ``end``."""

    def __init__(self, sailor: FlowStep, delivery: Delivery) -> None:
        self.sailor = sailor
        self.d = delivery
        self.kept = incoming_headers(delivery.headers)
        self.headers = outgoing_headers(self.kept, sailor.static_headers, sailor.s.additional_headers)
        self.incoming_pv = protocol_version(delivery.headers)
        self.msg: dict[str, Any] = {}
        # non-blocking publishes (emitted data, snapshots, replies, the returned value), in publish
        # order; all confirmed before the ack, a final failure becomes an error and a reject
        self.pending: list[PublishFuture] = []
        self.ended = False
        self.pt_replaced: dict[str, Any] | None = None  # passthrough entries replaced by lightweight handling

    def run(self) -> None:
        s = self.sailor
        assert s.transport is not None and s.module is not None
        try:
            self.msg = self.decode()
        except Exception as exc:  # noqa: BLE001 - undecodable input: reject without output, like Node
            log.warning("Cannot decode incoming message; rejected",
                        extra={"messageId": self.kept.get("messageId"), "reason": str(exc)[:200]})
            s.transport.settle(self.d, False)
            return
        if s.auto_resolve and lw.has_references(self.msg) and not self.resolve_references():
            return
        if self.kept.get("messageId") is None:
            log.warning("Message has no messageId; it is acked by delivery tag")
        ctx = TaskContext(
            self,
            message_id=self.kept.get("messageId"),
            variables=s.step.get("variables") or {},
            log_context={
                "threadId": self.kept.get("threadId"),
                "messageId": self.kept.get("messageId") or "unknown",
                "parentMessageId": self.kept.get("parentMessageId") or "unknown",
            },
        )
        run_function(s.module, ctx, self.msg, deep_copy(s.cfg), deep_copy(s.snapshot))

    def resolve_references(self) -> bool:
        """Fetch the referenced bodies (§6.5); on failure publish the error, reject, return False.

        As Node's ``processMessage``: the component never sees a message whose body is missing.
        """
        s = self.sailor
        assert s.transport is not None
        storage = s.storage()
        try:
            s.pool.run_blocking(lambda: lw.resolve_incoming(storage, self.msg))
        except lw.FetchError as exc:
            log.error("Lightweight message body cannot be fetched; the message is rejected",
                      extra={"messageId": self.kept.get("messageId"), "objectId": exc.object_id,
                             "reason": str(exc.cause)[:300]})
            try:
                self._send_error(format_error(exc), throttled=False)
            finally:
                s.transport.settle(self.d, False)
            return False
        return True

    def decode(self) -> dict[str, Any]:
        s = self.sailor
        if s.s.INPUT_FORMAT == "error":
            env = loads(self.d.body)
            body: dict[str, Any] = {"error": s.cipher.decrypt(env["error"].encode("ascii"), 1)}
            if env.get("errorInput"):
                body["errorInput"] = s.cipher.decrypt(env["errorInput"].encode("ascii"), 1)
            msg: Any = {"body": body, "headers": dict(self.d.headers)}
        else:
            msg = s.cipher.decrypt(self.d.body, self.incoming_pv)
        if not isinstance(msg, dict):
            raise DecryptError("Failed to decrypt message: payload is not a JSON object")
        if not isinstance(msg.get("headers"), dict):
            msg["headers"] = {}
        if self.d.headers.get("reply_to"):
            msg["headers"]["reply_to"] = self.d.headers["reply_to"]
        return msg

    # ------------------------------------------------------------------ events
    def on_event(self, ctx: TaskContext, event: str, payload: Any, final: bool = False) -> None:
        try:
            if event == "data":
                self.on_data(payload)
            elif event == "error":
                self.on_error(payload)
            elif event == "rebound":
                self.on_rebound(payload)
            elif event == "snapshot":
                self.on_snapshot(payload, replace=True)
            elif event == "updateSnapshot":
                self.on_snapshot(payload, replace=False)
            elif event == "updateKeys":
                self.on_update_keys(payload)
            elif event == "httpReply":
                self.on_http_reply(payload)
            elif event == "end":
                self.on_end(ctx)
        except Exception as exc:
            if event in ("error", "end"):
                raise
            log.error("Handling event failed", extra={"event": event, "reason": str(exc)[:300]})
            ctx.emit("error", exc)

    def _publish(
        self, routing_key: str, body: bytes, headers: dict[str, Any], kind: str | None, wait: bool = True
    ) -> None:
        s = self.sailor
        assert s.transport is not None
        if kind is not None:
            s.throttles[kind].acquire()
        future = s.transport.publish(s.exchange, routing_key, body, s.props(headers))
        if wait or self.ended:
            # after ``end`` nothing settles later: keep the publish synchronous
            future.wait()
            return
        pending = self.pending
        pending.append(future)
        if len(pending) >= MAX_UNCONFIRMED:
            self._wait_oldest()

    def _wait_oldest(self) -> None:
        """Bound the unconfirmed publishes of this message: drop confirmed ones, wait for the oldest.

        A failure raises here, so the emit that hit the bound reports it as an error event (as a
        synchronous emit would have); the failed publish is no longer pending, so it is reported once.
        """
        pending = self.pending
        keep = [f for f in pending if not f.done or f.error is not None]
        pending[:] = keep
        while len(pending) > MAX_UNCONFIRMED // 2:
            pending.pop(0).wait()

    def on_data(self, payload: Any) -> None:
        s = self.sailor
        if not isinstance(payload, dict):
            raise TypeError("data payload must be a JSON object")
        data = dict(payload)
        headers = dict(self.headers)
        headers["messageId"] = data.get("id") or headers["messageId"]
        headers["end"] = now_ms()
        is_passthrough = s.step.get("is_passthrough") is True
        if is_passthrough:
            self._passthrough(data)
        data["headers"] = dict(data.get("headers") or {})
        passthrough = data.get("passthrough")
        if s.s.EMIT_LIGHTWEIGHT_MESSAGE or (
                isinstance(passthrough, dict) and passthrough and lw.has_references({"passthrough": passthrough})):
            self._lightweight(data, is_passthrough)
        if is_passthrough and not s.s.NO_SELF_PASSTRHOUGH:
            own = {k: v for k, v in data.items() if k != "passthrough"}
            data["passthrough"] = {**data["passthrough"], s.s.STEP_ID: own}
        routing_key = pop_routing_key(data["headers"]) or s.s.DATA_ROUTING_KEY
        pv = s.s.PROTOCOL_VERSION
        headers["protocolVersion"] = pv
        body = s.cipher.encrypt(data, pv)
        self._check_size(body)
        self._publish(routing_key, body, headers, "data", wait=False)

    def _passthrough(self, data: dict[str, Any]) -> None:
        """The incoming passthrough (+ the incoming step's entry with NO_SELF_PASSTRHOUGH); the step's
        own entry is added by ``on_data`` after the lightweight handling, as Node's ``onData`` does."""
        s = self.sailor
        incoming = self.msg.get("passthrough") or {}
        merged = dict(incoming)
        if s.s.NO_SELF_PASSTRHOUGH:
            step_id = self.kept.get("stepId")
            if step_id:
                merged[step_id] = {k: v for k, v in self.msg.items() if k != "passthrough"}
        if self.pt_replaced:
            merged.update(self.pt_replaced)
        data["passthrough"] = merged

    def _lightweight(self, data: dict[str, Any], is_passthrough: bool) -> None:
        """§6.5 outgoing: with EMIT_LIGHTWEIGHT_MESSAGE upload above the threshold; without it, download
        passthrough bodies that are still references. Raises (→ error event) when that fails."""
        s = self.sailor
        storage = s.storage()
        passthrough = data.get("passthrough")
        if not isinstance(passthrough, dict):
            passthrough = {}
        pt: dict[str, Any] = passthrough
        if s.s.EMIT_LIGHTWEIGHT_MESSAGE:
            threshold = int(s.s.OBJECT_STORAGE_SIZE_THRESHOLD)
            replaced = s.pool.run_blocking(lambda: lw.lighten(storage, data, pt, threshold))
        else:
            replaced = s.pool.run_blocking(lambda: lw.resolve_passthrough(storage, pt))
        if replaced:
            data["passthrough"] = {**pt, **replaced}
            if is_passthrough:
                # Node mutates the shared passthrough entries: later emits of this message reuse them
                self.pt_replaced = {**(self.pt_replaced or {}), **replaced}

    def _check_size(self, body: bytes) -> None:
        limit = self.sailor.s.OUTGOING_MESSAGE_SIZE_LIMIT
        if len(body) > limit:
            raise ValueError(f"Outgoing message size {len(body)} exceeds limit of {limit}.")

    def error_envelope(self, err: dict[str, Any]) -> tuple[bytes, str]:
        """The error-key body and the bare encrypted error (for reply_to) for this delivery."""
        s = self.sailor
        pv = self.incoming_pv if s.s.INPUT_FORMAT != "error" else 1
        return error_envelope(s.cipher, err, self.d.body, pv)

    def on_error(self, payload: Any) -> None:
        self._send_error(format_error(payload), throttled=True)

    def _send_error(self, err: dict[str, Any], throttled: bool) -> None:
        s = self.sailor
        headers = dict(self.headers)
        headers["end"] = now_ms()
        body, encrypted = self.error_envelope(err)
        self._publish(s.s.ERROR_ROUTING_KEY, body, headers, "error" if throttled else None)
        reply_to = headers.get("reply_to")
        if reply_to and not s.s.NO_ERROR_REPLIES:
            problem = unusable_routing_key(reply_to)
            if problem is not None:
                # a reply that can never be routed must not hold the input: the error above is enough
                log.warning("Error reply not sent: reply_to is not a usable routing key",
                            extra={"messageId": self.kept.get("messageId"), "reason": problem})
                return
            reply_headers = dict(headers)
            reply_headers[ERROR_RESPONSE_HEADER] = True
            self._publish(reply_to, encrypted.encode("ascii"), reply_headers, None)

    def on_rebound(self, payload: Any) -> None:
        s = self.sailor
        reason = format_error(payload)["message"]
        iteration = rebound_iteration(self.d.headers)
        if iteration > s.s.REBOUND_LIMIT:
            # Node publishes an error but does not count it: the input is still acked (§6.8)
            self._send_error(format_error(RuntimeError("Rebound limit exceeded")), throttled=False)
            return
        orig = self.d.properties
        headers = dict(self.d.headers)
        headers["end"] = now_ms()
        headers["reboundReason"] = str(reason)
        headers["reboundIteration"] = iteration
        props = pika.BasicProperties(
            content_type=orig.content_type,
            content_encoding=orig.content_encoding,
            headers=amqp_headers(headers),
            # Node copies the input's properties, but amqplib's `persistent` option (the
            # AMQP_PERSISTENT_MESSAGES setting) then decides the delivery mode of every publish
            delivery_mode=s.delivery_mode,
            priority=orig.priority,
            correlation_id=orig.correlation_id,
            reply_to=orig.reply_to,
            expiration=str(rebound_expiration(iteration, s.s.REBOUND_INITIAL_EXPIRATION)),
            message_id=orig.message_id,
            timestamp=orig.timestamp,
            type=orig.type,
            user_id=orig.user_id,
            app_id=orig.app_id,
        )
        assert s.transport is not None
        s.transport.publish(s.exchange, s.s.REBOUND_ROUTING_KEY, self.d.body, props, mandatory=False).wait()

    def on_snapshot(self, payload: Any, replace: bool) -> None:
        s = self.sailor
        headers = dict(self.headers)
        if replace:
            headers["snapshotEvent"] = "snapshot"
            s.snapshot = payload if isinstance(payload, dict) else {}
            self._publish(s.s.SNAPSHOT_ROUTING_KEY, dumps(payload), headers, "snapshot", wait=False)
            return
        if not isinstance(payload, dict):
            log.error("You should pass an object to the `updateSnapshot` event")
            return
        if "$set" in payload:
            log.warning("ERROR: $set is not supported any more in `updateSnapshot` event")
            return
        headers["snapshotEvent"] = "updateSnapshot"
        s.snapshot = {**s.snapshot, **payload}
        self._publish(s.s.SNAPSHOT_ROUTING_KEY, dumps(payload), headers, None, wait=False)

    def on_update_keys(self, payload: Any) -> None:
        s = self.sailor
        REDACTOR.add_config(payload)
        try:
            s.api.update_keys(s.cfg.get("_account", ""), payload)
        except ApiError:
            log.error("Failed to update keys")
            raise

    def on_http_reply(self, payload: Any) -> None:
        s = self.sailor
        headers = dict(self.headers)
        headers["protocolVersion"] = 1
        reply_to = headers.get("reply_to")
        if not reply_to:
            raise ValueError("Component emitted 'httpReply' event but 'reply_to' was not found in AMQP headers")
        problem = unusable_routing_key(reply_to)
        if problem is not None:
            raise ValueError(f"Component emitted 'httpReply' event but 'reply_to' is not usable: {problem}")
        data = dict(payload) if isinstance(payload, dict) else {"body": payload}
        data["headers"] = dict(data.get("headers") or {})
        pop_routing_key(data["headers"])
        body = s.cipher.encrypt(data, 1)
        self._check_size(body)
        self._publish(reply_to, body, headers, None, wait=False)

    def on_end(self, ctx: TaskContext) -> None:
        s = self.sailor
        assert s.transport is not None
        self.ended = True
        pending, self.pending = self.pending, []
        if pending and ctx.error_count == 0:
            # the worker is free now; the I/O thread acks when the broker confirmed the output
            def failed(_err: BaseException) -> None:
                s.pool.submit(self._final_failed, ctx, pending)

            s.transport.settle_after(self.d, pending, failed)
            return
        self._report_failures(ctx, pending)
        s.transport.settle(self.d, ctx.error_count == 0)

    def _report_failures(self, ctx: TaskContext, futures: list[PublishFuture]) -> None:
        """Wait for ``futures``; each publish that finally failed becomes an error event (as it would
        have from a synchronous emit)."""
        for future in futures:
            try:
                future.wait()
            except AmqpError as exc:
                log.error("Publishing an output failed", extra={"reason": str(exc)[:300]})
                ctx.emit("error", exc)

    def _final_failed(self, ctx: TaskContext, futures: list[PublishFuture]) -> None:
        """An output could not be published: emit its error, reject the input (never ack it)."""
        assert self.sailor.transport is not None
        try:
            self._report_failures(ctx, futures)
        finally:
            self.sailor.transport.settle(self.d, False)


def store_startup_data(settings: Settings, result: Any) -> None:
    """POST the startup hook's result to the platform; on 409 DELETE and POST again (Node's sequence)."""
    v = settings.values
    client = ApiClient(v["API_URI"], v["API_USERNAME"], v["API_KEY"],
                       attempts=int(v["API_REQUEST_RETRY_ATTEMPTS"]),
                       delay_s=v["API_REQUEST_RETRY_DELAY"] / 1000.0)
    path = f"/sailor-support/hooks/task/{v['FLOW_ID']}/startup/data"
    state = result if result else {}
    try:
        client.request("POST", path, state)
    except ApiError as exc:
        if exc.status != 409:
            raise
        log.warning("Startup data already exists. Rewriting.")
        client.request("DELETE", path)
        client.request("POST", path, result if result is not None else {})


def run_shutdown_hook(settings: Settings) -> int:
    """ELASTICIO_HOOK_SHUTDOWN mode: no AMQP; GET startup data → shutdown(cfg, data) → DELETE."""
    v = settings.values
    api = ApiClient(v["API_URI"], v["API_USERNAME"], v["API_KEY"])
    hooks = ApiClient(v["API_URI"], v["API_USERNAME"], v["API_KEY"],
                      attempts=int(v["API_REQUEST_RETRY_ATTEMPTS"]),
                      delay_s=v["API_REQUEST_RETRY_DELAY"] / 1000.0)
    try:
        step = api.get_step(v["FLOW_ID"], v["STEP_ID"])
        cfg = step.get("config") or {}
        REDACTOR.add_config(cfg)
        reader = ComponentReader(component_root(v["COMPONENT_PATH"]))
        module = reader.load(v["FUNCTION"])
        path = f"/sailor-support/hooks/task/{v['FLOW_ID']}/startup/data"
        _, data = hooks.request("GET", path)
        call_hook(module, "shutdown", deep_copy(cfg), data)
        hooks.request("DELETE", path)
    except Exception as exc:
        log.critical("Shutdown hook failed", exc_info=exc)
        return 1
    return 0


def run_flow_step(settings: Settings) -> int:
    """Entry of ``python -m elasticio_sailor`` once settings are loaded."""
    REDACTOR.add(settings.secrets())
    if settings.HOOK_SHUTDOWN:
        return run_shutdown_hook(settings)
    try:
        step = FlowStep(settings, os.environ.get("SAILOR_CONCURRENCY") or "threads")
    except (ValueError, ComponentError) as exc:
        log.critical("Invalid configuration", exc_info=exc)
        return 1
    code = step.run()
    sys.stdout.flush()
    return code
