"""One delivery of a flow step: decode it, run the function, turn its events into AMQP publishes, settle it.

Each event is formatted exactly as the Node sailor 2.7.8 formats it (``lib/sailor.js`` ``processMessage``
and its ``onData``/``onError``/``onRebound``/``onSnapshot``/``onUpdateSnapshot``/``onUpdateKeys``/
``onHttpReply``/``onEnd``; docs/platform-contract.md §4.6, §5.3, §6), and the delivery is settled at
``end``: reject if an error was emitted, else ack. ``data``/``snapshot``/``updateSnapshot``/``httpReply``
emits return once their publish is handed to the I/O thread (in order); the ack waits for every confirm,
and a publish that finally fails becomes an error event and a reject. ``error`` and ``rebound`` emits
return once confirmed.
"""

from __future__ import annotations

import base64
import logging
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import pika

from . import objectstorage as lw
from .amqp import AmqpError, AmqpTransport, Delivery, PublishFuture, unusable_routing_key
from .amqp_fields import TolerantProperties
from .api import ApiClient, ApiError
from .crypto import DecryptError, MessageCipher, dumps, loads
from .executor import EVENT_HANDLERS, TaskContext, deep_copy, propagates, run_function
from .logs import REDACTOR, clip
from .messages import (
    ERROR_RESPONSE_HEADER,
    SailorError,
    amqp_headers,
    format_error,
    incoming_headers,
    now_ms,
    outgoing_headers,
    pop_routing_key,
    rebound_expiration,
    rebound_iteration,
)
from .pools import Pool, Throttle
from .settings import AmqpSettings, Settings
from .wire import MessageProperties

log = logging.getLogger("sailor")

# Unconfirmed non-blocking publishes per message; a component emitting in a loop waits for the oldest
# confirm beyond this, so memory stays bounded (the synchronous emit's back-pressure, in batches).
MAX_UNCONFIRMED = 64


@dataclass
class StepRuntime:
    """What every message of one flow step shares: settings, cipher, transport, pool, the loaded
    function and the step's in-memory snapshot (built by ``FlowStep`` once the step is loaded)."""

    settings: Settings
    amqp: AmqpSettings
    cipher: MessageCipher
    api: ApiClient
    transport: AmqpTransport
    pool: Pool
    throttles: Mapping[str, Throttle]
    static_headers: dict[str, Any]
    document: dict[str, Any]
    cfg: dict[str, Any]
    module: ModuleType
    snapshot: Any  # the last snapshot emitted (any JSON value), else the step document's
    # Node: `{autoResolveObjectReferences: true, ...definition}`, then a truthiness test
    # (lib/component_reader.js findTriggerOrActionDefinition, lib/sailor.js processMessage)
    auto_resolve: bool = True
    # lightweight messages (docs/platform-contract.md §6.5, see objectstorage.py): made on first use
    _storage: lw.ObjectStorage | None = field(default=None, repr=False)
    delivery_mode: int = field(init=False)

    def __post_init__(self) -> None:
        self.delivery_mode = delivery_mode(self.settings)

    def storage(self) -> lw.ObjectStorage:
        """The object-storage client (ELASTICIO_OBJECT_STORAGE_*, REQUEST_MAX_RETRY, REQUEST_TIMEOUT)."""
        if self._storage is None:
            self._storage = lw.storage_from_settings(self.settings.values, self.cipher, os.environ)
        return self._storage

    def props(self, headers: dict[str, Any]) -> pika.BasicProperties:
        """Properties of data/error/snapshot/httpReply publishes."""
        return publish_properties(self.delivery_mode, headers)

    def process_delivery(self, delivery: Delivery) -> None:
        """Decode, run the function, publish its events, settle (runs on the pool)."""
        try:
            MessageExecution(self, delivery).run()
        except BaseException as exc:
            # whatever escaped (a failed error publish, a SystemExit from sailor code, …): the delivery is
            # rejected — at most once: the transport ignores a delivery already settled — and this worker
            # thread or greenlet lives on (only what stops the process itself is re-raised)
            log.error("Message processing failed inside the sailor", exc_info=exc)
            self.transport.settle(delivery, False)
            if propagates(exc):
                raise


def delivery_mode(settings: Settings) -> int:
    """amqplib's ``persistent`` option (AMQP_PERSISTENT_MESSAGES) decides every publish's delivery mode."""
    return 2 if settings.AMQP_PERSISTENT_MESSAGES else 1


def publish_properties(mode: int, headers: dict[str, Any]) -> pika.BasicProperties:
    """Properties of data/error/snapshot/httpReply publishes (docs/platform-contract.md §4.5)."""
    return MessageProperties(
        content_type="application/json",
        content_encoding="utf8",
        delivery_mode=mode,
        headers=amqp_headers(headers),
    )


def protocol_version(headers: dict[str, Any]) -> int:
    """Incoming encoding: ``Number(protocolVersion || 1)`` — below 2 means base64 text."""
    raw = headers.get("protocolVersion") or 1
    try:
        return int(raw)
    except (TypeError, ValueError):
        return 1


def error_envelope(
    cipher: MessageCipher, err: dict[str, Any], incoming_body: bytes | None, incoming_pv: int
) -> tuple[bytes, str]:
    """``{"error": b64, "errorInput": b64}`` (docs/platform-contract.md §6.7) and the bare ``error`` string.

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

    def __init__(self, step: StepRuntime, delivery: Delivery) -> None:
        self.step = step
        self.d = delivery
        self.kept = incoming_headers(delivery.headers)
        self.headers = outgoing_headers(self.kept, step.static_headers, step.settings.additional_headers)
        self.incoming_pv = protocol_version(delivery.headers)
        self.msg: dict[str, Any] = {}
        # non-blocking publishes (emitted data, snapshots, replies, the returned value), in publish
        # order; all confirmed before the ack, a final failure becomes an error and a reject
        self.pending: list[PublishFuture] = []
        # ``pending`` and ``ended`` change under this lock: a component may emit from several threads at
        # once, and an unsynchronised rewrite of the list could drop a future the ack must wait for.
        # Never held while waiting (in greenlet mode a wait switches greenlets).
        self.lock = threading.Lock()
        self.ended = False
        self.pt_replaced: dict[str, Any] | None = None  # passthrough entries replaced by lightweight handling
        self.orig_passthrough: dict[str, Any] = {}  # the incoming passthrough as it was before ``process``

    def run(self) -> None:
        s = self.step
        try:
            self.msg = self.decode()
        except Exception as exc:  # noqa: BLE001 - undecodable input: reject without output, like Node
            log.warning("Cannot decode incoming message; rejected",
                        extra={"messageId": self.kept.get("messageId"), "reason": clip(exc, 200)})
            s.transport.settle(self.d, False)
            return
        if s.auto_resolve and lw.has_references(self.msg) and not self.resolve_references():
            return
        if self.kept.get("messageId") is None:
            log.warning("Message has no messageId; it is acked by delivery tag")
        ctx = TaskContext(
            self,
            message_id=self.kept.get("messageId"),
            variables=s.document.get("variables") or {},
            log_context={
                "threadId": self.kept.get("threadId"),
                "messageId": self.kept.get("messageId") or "unknown",
                "parentMessageId": self.kept.get("parentMessageId") or "unknown",
            },
        )
        if s.document.get("is_passthrough") is True:
            # Node clones the incoming passthrough before ``process`` (lib/sailor.js ``runExec``,
            # ``origPassthrough``): what the component does to ``msg["passthrough"]`` never reaches the output
            self.orig_passthrough = deep_copy(self.msg.get("passthrough") or {})
        run_function(s.module, ctx, self.msg, deep_copy(s.cfg), deep_copy(s.snapshot))

    def resolve_references(self) -> bool:
        """Fetch the referenced bodies (docs/platform-contract.md §6.5); on failure publish the error,
        reject, return False.

        As Node's ``processMessage``: the component never sees a message whose body is missing.
        """
        s = self.step
        storage = s.storage()
        try:
            s.pool.run_blocking(lambda: lw.resolve_incoming(storage, self.msg))
        except lw.FetchError as exc:
            log.error("Lightweight message body cannot be fetched; the message is rejected",
                      extra={"messageId": self.kept.get("messageId"), "objectId": exc.object_id,
                             "reason": clip(exc.cause, 300)})
            try:
                self._send_error(format_error(exc), throttled=False)
            except Exception as err:  # noqa: BLE001 - the reject below still goes out, once
                log.error("Publishing the error failed", extra={"reason": clip(err, 300)})
            s.transport.settle(self.d, False)
            return False
        return True

    def decode(self) -> dict[str, Any]:
        s = self.step
        if s.settings.INPUT_FORMAT == "error":
            # the error envelope as Node's _decodeErrorMessage gives it: every member kept, ``error`` and
            # ``errorInput`` decrypted (base64, whatever the protocolVersion) when present
            env = loads(self.d.body)
            if not isinstance(env, dict):
                raise DecryptError("Failed to decode the error message: not a JSON object")
            body: dict[str, Any] = dict(env)
            for key in ("error", "errorInput"):
                if env.get(key):
                    body[key] = s.cipher.decrypt(str(env[key]).encode("ascii"), 1)
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
    def on_event(self, ctx: TaskContext, event: str, payload: Any) -> None:
        """Run the event's handler from the table. An ``httpReply`` the sailor refuses before queueing it (over
        the size limit, without a usable ``reply_to``: :class:`SailorError`) raises into the emitting code, as
        Node's ``emit`` rejects there (its ``onHttpReply`` returns the failed send): a component that does not
        catch it fails. Any other handler failure becomes an error event and the emit returns, as Node's
        ``onData`` catches a failed send (``return onError(err)``): a ``data`` over the size limit, a publish
        that failed while this emit waited its turn, an upload, ``updateKeys``; the component's later outputs
        are still published (the input is rejected for the error). An ``error`` or ``end`` that cannot be
        handled propagates (the delivery is then rejected)."""
        try:
            _HANDLERS[event](self, ctx, payload)
        except Exception as exc:
            if event in ("error", "end"):
                raise
            log.error("Handling event failed", extra={"event": event, "reason": clip(exc, 300)})
            if isinstance(exc, SailorError) and event == "httpReply":
                raise
            ctx.emit("error", exc)

    def _publish(
        self, routing_key: str, body: bytes, headers: dict[str, Any], kind: str | None, wait: bool = True
    ) -> None:
        s = self.step
        if kind is not None:
            s.throttles[kind].acquire()
        future = s.transport.publish(s.amqp.PUBLISH_MESSAGES_TO, routing_key, body, s.props(headers))
        if not wait:
            with self.lock:
                queued = not self.ended
                if queued:
                    pending = self.pending
                    pending.append(future)
                    full = len(pending) >= MAX_UNCONFIRMED
            if queued:
                if full:
                    self._wait_oldest()
                return
        # synchronous (error, rebound), and after ``end`` (nothing settles later)
        future.wait()

    def _wait_oldest(self) -> None:
        """Bound the unconfirmed publishes of this message: drop confirmed ones, wait for the oldest.

        A failure raises here, so the emit that hit the bound reports it as an error event (as a
        synchronous emit would have); the failed publish is no longer pending, so it is reported once.
        The waits happen outside the lock, on futures that stay pending until confirmed (another
        thread's emit, or ``end``, never loses them).
        """
        lock = self.lock
        with lock:
            pending = self.pending
            keep = [f for f in pending if not f.done or f.error is not None]
            pending[:] = keep
            oldest = keep[:len(keep) - MAX_UNCONFIRMED // 2]
        for future in oldest:
            try:
                future.wait()
            except BaseException:
                with lock:  # reported by whoever takes it out of ``pending`` first, and only by them
                    mine = any(f is future for f in self.pending)
                    if mine:
                        self.pending.remove(future)
                if mine:
                    raise
                return  # another emit (or ``end``) reports this failure

    def on_data(self, _ctx: TaskContext, payload: Any) -> None:
        s = self.step
        if not isinstance(payload, dict):
            raise TypeError("data payload must be a JSON object")
        data = dict(payload)
        headers = dict(self.headers)
        headers["messageId"] = data.get("id") or headers["messageId"]
        headers["end"] = now_ms()
        is_passthrough = s.document.get("is_passthrough") is True
        if is_passthrough:
            self._passthrough(data)
        data["headers"] = dict(data.get("headers") or {})
        passthrough = data.get("passthrough")
        if s.settings.EMIT_LIGHTWEIGHT_MESSAGE or (
                isinstance(passthrough, dict) and passthrough and lw.has_references({"passthrough": passthrough})):
            self._lightweight(data, is_passthrough)
        if is_passthrough and not s.settings.NO_SELF_PASSTRHOUGH:
            own = {k: v for k, v in data.items() if k != "passthrough"}
            data["passthrough"] = {**data["passthrough"], s.settings.STEP_ID: own}
        routing_key = pop_routing_key(data["headers"]) or s.amqp.DATA_ROUTING_KEY
        pv = s.settings.PROTOCOL_VERSION
        headers["protocolVersion"] = pv
        body = s.cipher.encrypt(data, pv)
        self._check_size(body)
        self._publish(routing_key, body, headers, "data", wait=False)

    def _passthrough(self, data: dict[str, Any]) -> None:
        """The incoming passthrough (+ the incoming step's entry with NO_SELF_PASSTRHOUGH); the step's
        own entry is added by ``on_data`` after the lightweight handling, as Node's ``onData`` does."""
        s = self.step
        merged = dict(self.orig_passthrough)
        if s.settings.NO_SELF_PASSTRHOUGH:
            step_id = self.kept.get("stepId")
            if step_id:
                merged[step_id] = {k: v for k, v in self.msg.items() if k != "passthrough"}
        if self.pt_replaced:
            merged.update(self.pt_replaced)
        data["passthrough"] = merged

    def _lightweight(self, data: dict[str, Any], is_passthrough: bool) -> None:
        """Outgoing lightweight handling (docs/platform-contract.md §6.5): with EMIT_LIGHTWEIGHT_MESSAGE
        upload above the threshold; without it, download passthrough bodies that are still references.
        Raises (→ error event) when that fails."""
        s = self.step
        storage = s.storage()
        passthrough = data.get("passthrough")
        if not isinstance(passthrough, dict):
            passthrough = {}
        pt: dict[str, Any] = passthrough
        if s.settings.EMIT_LIGHTWEIGHT_MESSAGE:
            threshold = int(s.settings.OBJECT_STORAGE_SIZE_THRESHOLD)
            replaced = s.pool.run_blocking(lambda: lw.lighten(storage, data, pt, threshold))
        else:
            replaced = s.pool.run_blocking(lambda: lw.resolve_passthrough(storage, pt))
        if replaced:
            data["passthrough"] = {**pt, **replaced}
            if is_passthrough:
                # Node mutates the shared passthrough entries: later emits of this message reuse them
                self.pt_replaced = {**(self.pt_replaced or {}), **replaced}

    def _check_size(self, body: bytes) -> None:
        limit = self.step.settings.OUTGOING_MESSAGE_SIZE_LIMIT
        if len(body) > limit:
            raise SailorError(f"Outgoing message size {len(body)} exceeds limit of {limit}.")

    def error_envelope(self, err: dict[str, Any]) -> tuple[bytes, str]:
        """The error-key body and the bare encrypted error (for reply_to) for this delivery."""
        s = self.step
        pv = self.incoming_pv if s.settings.INPUT_FORMAT != "error" else 1
        return error_envelope(s.cipher, err, self.d.body, pv)

    def on_error(self, _ctx: TaskContext, payload: Any) -> None:
        self._send_error(format_error(payload), throttled=True)

    def _send_error(self, err: dict[str, Any], throttled: bool, end: bool = True) -> None:
        s = self.step
        headers = dict(self.headers)
        if end:
            headers["end"] = now_ms()
        body, encrypted = self.error_envelope(err)
        self._publish(s.amqp.ERROR_ROUTING_KEY, body, headers, "error" if throttled else None)
        reply_to = headers.get("reply_to")
        if reply_to and not s.settings.NO_ERROR_REPLIES:
            problem = unusable_routing_key(reply_to)
            if problem is not None:
                # a reply that can never be routed must not hold the input: the error above is enough
                log.warning("Error reply not sent: reply_to is not a usable routing key",
                            extra={"messageId": self.kept.get("messageId"), "reason": problem})
                return
            reply_headers = dict(headers)
            reply_headers[ERROR_RESPONSE_HEADER] = True
            self._publish(reply_to, encrypted.encode("ascii"), reply_headers, None)

    def on_rebound(self, _ctx: TaskContext, payload: Any) -> None:
        s = self.step
        formatted = format_error(payload)
        reason = formatted["message"]
        iteration = rebound_iteration(self.d.headers)
        if iteration > s.settings.REBOUND_LIMIT:
            # Node publishes an error but does not count it: the input is still acked
            # (lib/amqp.js sendRebound; docs/platform-contract.md §6.8)
            # with the outgoing headers as they are (no ``end``: Node's onRebound does not stamp one).
            # Node's name and message; after its stack, what this last attempt said and any details the
            # rebound carried (the message never comes back, so this is the last word on it: for a component
            # that did part of its work, e.g. the ids of what it billed, this is where they are)
            details = {key: value for key, value in formatted.items() if key not in ("name", "message", "stack")}
            limit = SailorError("Rebound limit exceeded", {"reboundReason": reason, **details})
            self._send_error(format_error(limit), throttled=False, end=False)
            return
        orig = self.d.properties
        headers = dict(self.d.headers)
        headers["end"] = now_ms()
        headers["reboundReason"] = str(reason)
        headers["reboundIteration"] = iteration
        # the incoming headers as they came (doubles, raw timestamps): encoded by amqp_fields, as amqplib
        # writes them back, where pika's own encoder fails on a float
        props = TolerantProperties(
            content_type=orig.content_type,
            content_encoding=orig.content_encoding,
            headers=amqp_headers(headers),
            # Node copies the input's properties, but amqplib's `persistent` option (the
            # AMQP_PERSISTENT_MESSAGES setting) then decides the delivery mode of every publish
            delivery_mode=s.delivery_mode,
            priority=orig.priority,
            correlation_id=orig.correlation_id,
            reply_to=orig.reply_to,
            expiration=str(rebound_expiration(iteration, s.settings.REBOUND_INITIAL_EXPIRATION)),
            message_id=orig.message_id,
            timestamp=orig.timestamp,
            type=orig.type,
            user_id=orig.user_id,
            app_id=orig.app_id,
        )
        s.transport.publish(s.amqp.PUBLISH_MESSAGES_TO, s.amqp.REBOUND_ROUTING_KEY, self.d.body, props,
                            mandatory=False).wait()

    def on_snapshot(self, _ctx: TaskContext, payload: Any) -> None:
        s = self.step
        headers = dict(self.headers)
        headers["snapshotEvent"] = "snapshot"
        s.snapshot = payload  # whatever it is, as Node keeps it (``that.snapshot = data``) for the next message
        self._publish(s.amqp.SNAPSHOT_ROUTING_KEY, dumps(payload), headers, "snapshot", wait=False)

    def on_update_snapshot(self, _ctx: TaskContext, payload: Any) -> None:
        s = self.step
        if not isinstance(payload, dict):
            log.error("You should pass an object to the `updateSnapshot` event")
            return
        if "$set" in payload:
            log.warning("ERROR: $set is not supported any more in `updateSnapshot` event")
            return
        headers = dict(self.headers)
        headers["snapshotEvent"] = "updateSnapshot"
        if isinstance(s.snapshot, dict):  # Node extends an object; a snapshot of another kind stays as it is
            s.snapshot = {**s.snapshot, **payload}
        self._publish(s.amqp.SNAPSHOT_ROUTING_KEY, dumps(payload), headers, None, wait=False)

    def on_update_keys(self, _ctx: TaskContext, payload: Any) -> None:
        s = self.step
        REDACTOR.add_config(payload)
        try:
            s.api.update_keys(s.cfg.get("_account", ""), payload)
        except ApiError:
            log.error("Failed to update keys")
            raise

    def on_http_reply(self, _ctx: TaskContext, payload: Any) -> None:
        s = self.step
        headers = dict(self.headers)
        headers["protocolVersion"] = 1
        reply_to = headers.get("reply_to")
        if not reply_to:
            raise SailorError("Component emitted 'httpReply' event but 'reply_to' was not found in AMQP headers")
        problem = unusable_routing_key(reply_to)
        if problem is not None:
            raise SailorError(f"Component emitted 'httpReply' event but 'reply_to' is not usable: {problem}")
        data = dict(payload) if isinstance(payload, dict) else {"body": payload}
        data["headers"] = dict(data.get("headers") or {})
        pop_routing_key(data["headers"])
        body = s.cipher.encrypt(data, 1)
        self._check_size(body)
        self._publish(reply_to, body, headers, None, wait=False)

    def on_end(self, ctx: TaskContext, _payload: Any) -> None:
        s = self.step
        with self.lock:
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
                log.error("Publishing an output failed", extra={"reason": clip(exc, 300)})
                ctx.emit("error", exc)

    def _final_failed(self, ctx: TaskContext, futures: list[PublishFuture]) -> None:
        """An output could not be published: emit its error, reject the input (never ack it)."""
        try:
            self._report_failures(ctx, futures)
        finally:
            self.step.transport.settle(self.d, False)


# event name -> its handler, from the one table of events (executor.EVENT_HANDLERS); a row without
# its method fails here, at import
_HANDLERS: dict[str, Callable[[MessageExecution, TaskContext, Any], None]] = {
    event: getattr(MessageExecution, method) for event, method in EVENT_HANDLERS.items()
}
