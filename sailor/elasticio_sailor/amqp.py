"""AMQP transport: one I/O thread running pika's SelectConnection loop for a read and a write connection.

Why this shape: pika's asynchronous adapter keeps every socket operation on one thread (no locks around
pika), publisher confirms are pipelined (many publishes in flight, acks resolved in batches), and the
component code runs on worker threads that block on a cheap ``threading.Event`` — so a synchronous
``emit`` costs two thread hand-offs and no polling.

Reliability rules implemented here:

* every publish waits for the broker's confirm; nacked or unconfirmed publishes (write connection lost)
  are re-published with back-off ``min(delay·2^i, max)`` and a ``retry`` header, like Node;
* a delivery is acked/rejected on the channel it is currently known on. Deliveries are remembered by
  ``messageId`` while in processing: a redelivery of a message still in processing (the read connection
  dropped and came back) is not processed again, and the running processing settles the newest copy;
  an outcome reached while the read channel was down is kept and applied to the redelivered copy;
* lost connections are reopened (initially ``AMQP_RECONNECT_ATTEMPTS`` tries, later without limit, the
  delay doubling up to 5 s) and the consumer is re-registered.
"""

from __future__ import annotations

import collections
import functools
import logging
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import pika
import pika.exceptions
import pika.frame
import pika.spec
from pika.adapters.select_connection import IOLoop

from . import amqp_fields
from .logs import clip
from .wire import ack_frame, publish_frames, reject_frame

log = logging.getLogger("sailor")

# incoming headers pika cannot decode no longer drop the connection (see amqp_fields)
amqp_fields.install()

_MAX_RECONNECT_DELAY_S = 5.0
_MAX_FINISHED = 20_000  # outcomes kept for redeliveries (bounded: ids never redelivered must not leak)


def unusable_routing_key(key: Any) -> str | None:
    """Why ``key`` cannot be an AMQP routing key (a short string: at most 255 bytes), or ``None``."""
    if not isinstance(key, str):
        return f"routing key is a {type(key).__name__}, not a string"
    size = len(key.encode("utf-8", "surrogatepass"))
    if size > 255:
        return f"routing key is {size} bytes long (AMQP allows 255)"
    return None


def _send_raw(ch: Any, data: bytes, frames: int) -> bool:
    """Write already marshalled frames on ``ch``'s connection as pika's ``Connection._output_marshaled_frames``
    does (its byte/frame counters feed the heartbeat checker). ``False`` when the channel or connection is
    not open: the caller then takes pika's own path, which raises pika's error for that state."""
    conn = ch.connection
    if not ch.is_open or conn.is_closed or getattr(conn, "_transport", None) is None:
        return False
    conn.bytes_sent += len(data)
    conn.frames_sent += frames
    conn._adapter_emit_data(data)
    return True


def _publish_raw(ch: Any, req: _Publish) -> bool:
    """``basic_publish`` of ``req`` with the frames built by ``wire.publish_frames`` in one socket-buffer
    write; ``False`` (nothing written) where pika's ``basic_publish`` must do it."""
    body_max = getattr(ch.connection, "_body_max_length", None)
    if not body_max or not ch.is_open or type(req.body) is not bytes:
        return False
    encoded = req.encoded if req.encoded is not None else b"".join(req.properties.encode())
    built = publish_frames(ch.channel_number, body_max, req.exchange, req.routing_key, req.body, encoded,
                           req.mandatory)
    return built is not None and _send_raw(ch, *built)


def _skip_callback_lookup_for_deliveries(conn: Any) -> None:
    """Spare every ``basic.deliver`` frame pika's callback-registry lookup (idempotent per connection).

    pika's ``Connection._process_frame`` first asks its ``CallbackManager`` whether a callback waits for
    the method of each incoming method frame (``_process_callbacks``: two decorators and a name lookup per
    frame, 15 % of the I/O thread's time in a profile). Nothing ever registers one for ``Basic.Deliver``
    — pika hands deliveries to the channel (``Channel._on_deliver``), which calls the consumer — so for
    those frames the answer is always "no" and the frame goes straight on to the channel, as before.
    """
    original = conn._process_callbacks
    if getattr(original, "_skips_deliveries", False):
        return
    method_frame, deliver = pika.frame.Method, pika.spec.Basic.Deliver

    def process_callbacks(frame_value: Any) -> bool:
        if type(frame_value) is method_frame and type(frame_value.method) is deliver:
            return False
        return bool(original(frame_value))

    process_callbacks._skips_deliveries = True  # type: ignore[attr-defined]
    conn._process_callbacks = process_callbacks


class AmqpError(Exception):
    """Connection, consume or publish failure (messages never include credentials)."""

    name = "Error"  # its error event's ``name``: Node raises a plain ``Error`` ("Failed on publishing …")


# How a task that runs on the I/O thread's loop waits without blocking the loop: ``park(register)`` hands
# ``register`` a function that resumes the task, then gives the loop back until that function is called;
# it returns at once when the caller is not such a task. A cooperative pool installs one as
# ``AmqpTransport.park`` (pools.GreenletPool); the transport itself knows nothing of how tasks switch.
Park = Callable[[Callable[[Callable[[], None]], None]], None]


class PublishFuture:
    """Completion of one publish: ``wait()`` returns once confirmed, or raises the final failure.

    A pre-acquired lock instead of ``threading.Event``: one waiter only, and a bare lock is a single
    futex per hand-off, which matters at thousands of publishes per second. With ``park`` (see
    :data:`Park`), a task on the I/O thread's loop parks instead of blocking the loop.
    """

    __slots__ = ("_callbacks", "_done", "_error", "_lock", "_park", "_waiter")

    def __init__(self, park: Park | None = None) -> None:
        self._lock = threading.Lock()
        self._lock.acquire()
        self._park = park
        self._waiter: Callable[[], None] | None = None
        self._done = False
        self._error: BaseException | None = None
        self._callbacks: list[Callable[[BaseException | None], None]] | None = None

    def set_done(self, error: BaseException | None = None) -> None:
        """Complete the publish (I/O thread only)."""
        if self._done:
            return
        self._error = error
        self._done = True
        self._lock.release()
        callbacks, self._callbacks = self._callbacks, None
        for cb in callbacks or ():
            cb(error)
        waiter, self._waiter = self._waiter, None
        if waiter is not None:
            waiter()  # resume the task parked in wait()

    @property
    def done(self) -> bool:
        return self._done

    @property
    def error(self) -> BaseException | None:
        return self._error

    def on_done(self, cb: Callable[[BaseException | None], None]) -> None:
        """Run ``cb(error)`` when completed (I/O thread only; at once if already completed)."""
        if self._done:
            cb(self._error)
        elif self._callbacks is None:
            self._callbacks = [cb]
        else:
            self._callbacks.append(cb)

    def _resume_with(self, resume: Callable[[], None]) -> None:
        self._waiter = resume

    def wait(self, timeout: float | None = None) -> None:
        """Block until confirmed; raise AmqpError if the publish finally failed."""
        if not self._done and self._park is not None:
            self._park(self._resume_with)  # a task on the I/O thread: the loop goes on until set_done
        if not self._done:
            if not self._lock.acquire(timeout=-1 if timeout is None else timeout):
                raise AmqpError("publish not confirmed in time")
            self._lock.release()
        if self._error is not None:
            raise self._error


# Channel closures a publish may meet before it fails (whatever AMQP_PUBLISH_RETRY_ATTEMPTS says, unlimited by
# default): a broker restart or two is survived, a publish that itself makes the broker close the channel is not.
MAX_CLOSURES = 10


class _Publish:
    __slots__ = ("body", "closures", "encoded", "exchange", "future", "iteration", "mandatory", "properties",
                 "routing_key")

    def __init__(
        self, exchange: str, routing_key: str, body: bytes, properties: pika.BasicProperties,
        mandatory: bool, park: Park | None = None,
    ) -> None:
        self.exchange = exchange
        self.routing_key = routing_key
        self.body = body
        self.properties = properties
        self.mandatory = mandatory
        self.future = PublishFuture(park)
        self.iteration = 0
        self.closures = 0  # times its channel closed before it was confirmed (_requeue_unconfirmed)
        self.encoded: bytes | None = None  # properties.encode() made by the publishing thread

    def set_retry_header(self) -> None:
        """Count this attempt in the ``retry`` header (Node's publish retry); the encoding is redone."""
        if self.properties.headers is not None:
            self.properties.headers["retry"] = self.iteration
            self.encoded = None


class Delivery:
    """One received message and where it can currently be acknowledged."""

    __slots__ = ("body", "delivery_tag", "generation", "headers", "message_id", "properties", "redelivered",
                 "settled", "key")

    def __init__(
        self, body: bytes, properties: pika.BasicProperties, delivery_tag: int, generation: int,
        redelivered: bool,
    ) -> None:
        self.body = body
        self.properties = properties
        self.headers: dict[str, Any] = properties.headers or {}
        self.delivery_tag = delivery_tag
        self.generation = generation
        self.redelivered = redelivered
        mid = self.headers.get("messageId")
        self.message_id: str | None = mid if isinstance(mid, str) and mid else None
        self.settled = False  # acked or rejected (set on the I/O thread): it is settled at most once
        # What tells a broker redelivery of this very message from another copy with the same messageId
        # (a rebound copy keeps the id, with the next reboundIteration, and the same body): the id, the
        # iteration and the body. None without a messageId.
        self.key: tuple[str, str, int] | None = (
            None if self.message_id is None
            else (self.message_id, str(self.headers.get("reboundIteration")), hash(body)))


class AmqpTransport:
    """Consumer + confirm-mode publisher on two connections (``<host>-read`` / ``<host>-write``)."""

    def __init__(
        self,
        uri: str,
        *,
        prefetch: int,
        on_delivery: Callable[[Delivery], None],
        reconnect_attempts: int = 3,
        reconnect_timeout_ms: float = 100,
        publish_retry_delay_ms: float = 100,
        publish_max_retry_delay_ms: float = 300000,
        publish_retry_attempts: float = float("inf"),
    ) -> None:
        self._uri = uri
        self._prefetch = int(prefetch)
        self._on_delivery = on_delivery
        self._reconnect_attempts = int(reconnect_attempts)
        self._reconnect_timeout_s = reconnect_timeout_ms / 1000.0
        self._retry_delay_ms = publish_retry_delay_ms
        self._retry_max_ms = publish_max_retry_delay_ms
        self._retry_attempts = publish_retry_attempts
        self._host = socket.gethostname()
        self._ioloop = IOLoop()
        self._thread: threading.Thread | None = None
        self._io_ident: int | None = None
        self.immediate = False  # run deliveries and confirm completions inline (a cooperative pool)
        self.park: Park | None = None  # how a publisher on the I/O thread's loop waits (see Park)

        # state below is touched only on the I/O thread
        self._read_conn: pika.SelectConnection | None = None
        self._write_conn: pika.SelectConnection | None = None
        self._read_ch: Any = None
        self._write_ch: Any = None
        self._read_gen = 0
        self._started = False
        self._closing = False
        self._failures = {"read": 0, "write": 0}
        self._queue: str | None = None
        self._consumer_tag: str | None = None
        self._consume_waiter: PublishFuture | None = None
        self._cancel_waiter: PublishFuture | None = None
        self._waiting: collections.deque[_Publish] = collections.deque()
        self._unconfirmed: dict[int, _Publish] = {}
        self._next_tag = 0
        # deliveries in processing and the outcomes of finished ones, by Delivery.key
        self._processing: dict[tuple[str, str, int], Delivery] = {}
        self._finished: collections.OrderedDict[tuple[str, str, int], bool] = collections.OrderedDict()

        # shared with other threads
        self._inbox: collections.deque[Callable[[], None]] = collections.deque()
        self._inbox_lock = threading.Lock()
        self._wake_pending = False
        self._ready = {"read": threading.Event(), "write": threading.Event()}
        self._start_error: BaseException | None = None
        self._start_failed = threading.Event()
        self._active = 0  # deliveries received and not settled; changed on the I/O thread only
        self._deferred: list[Callable[[], None]] = []

    # ------------------------------------------------------------------ public (any thread)
    def start(self) -> None:
        """Open both connections and channels; raise AmqpError after the configured attempts."""
        try:
            self._params("read")
        except Exception as exc:  # noqa: BLE001 - a malformed URI would otherwise fail inside the I/O loop
            raise AmqpError(f"invalid ELASTICIO_AMQP_URI: {type(exc).__name__}") from None
        self._thread = threading.Thread(target=self._run_loop, name="amqp-io", daemon=True)
        self._thread.start()
        self._call(self._open_read)
        self._call(self._open_write)
        while not (self._ready["read"].is_set() and self._ready["write"].is_set()):
            if self._start_failed.wait(0.05):
                self.close()
                raise AmqpError(f"cannot connect to AMQP: {self._start_error}")
        self._call(self._mark_started)

    def consume(self, queue: str) -> None:
        """Start consuming ``queue``; raise AmqpError if the broker refuses (e.g. 404 no queue)."""
        waiter = PublishFuture()

        def go() -> None:
            self._queue = queue
            self._consume_waiter = waiter
            self._basic_consume()

        self._call(go)
        waiter.wait(60)

    def stop_consuming(self) -> None:
        """Cancel the consumer and wait for the broker's CancelOk (no new deliveries after this)."""
        waiter = PublishFuture()

        def go() -> None:
            self._queue = None
            ch, tag = self._read_ch, self._consumer_tag
            self._consumer_tag = None
            if ch is not None and ch.is_open and tag:
                self._cancel_waiter = waiter
                ch.basic_cancel(tag, callback=lambda _f: waiter.set_done())
            else:
                waiter.set_done()

        self._call(go)
        try:
            waiter.wait(10)
        except AmqpError:
            log.warning("consumer cancel not confirmed; continuing shutdown")

    def alive(self) -> bool:
        """Whether the I/O thread is still running."""
        return self._thread is not None and self._thread.is_alive()

    def wait_idle(self) -> None:
        """Block until every received delivery has been settled."""
        while self._active:
            time.sleep(0.02)

    def publish(
        self, exchange: str, routing_key: str, body: bytes, properties: pika.BasicProperties,
        mandatory: bool = True,
    ) -> PublishFuture:
        """Queue a publish on the confirm channel; the future completes at the broker's confirm."""
        req = _Publish(exchange, routing_key, body, properties, mandatory, self.park)
        try:
            # encoded here, on the publishing (worker) thread, to keep it off the I/O thread; a failure is
            # left to the I/O thread's publish, which reports it as before
            req.encoded = b"".join(properties.encode())
        except Exception:  # noqa: BLE001 - see above
            req.encoded = None
        if threading.get_ident() == self._io_ident:
            self._publish(req)  # greenlet mode: already on the I/O thread
        else:
            self._call(lambda: self._publish(req))
        return req.future

    def settle(self, delivery: Delivery, ack: bool) -> None:
        """Ack (or reject without requeue) a delivery once its processing ended."""
        if threading.get_ident() == self._io_ident:
            self._settle(delivery, ack)
        else:
            self._call(lambda: self._settle(delivery, ack))

    def settle_after(
        self, delivery: Delivery, futures: list[PublishFuture], on_failure: Callable[[BaseException], None]
    ) -> None:
        """Ack ``delivery`` on the I/O thread as soon as all ``futures`` are confirmed, without a worker
        waiting for them; if one finally failed, call ``on_failure(error)`` instead (it must settle)."""

        def go() -> None:
            left = [len(futures)]
            failed: list[BaseException] = []

            def one_done(err: BaseException | None) -> None:
                if err is not None:
                    failed.append(err)
                left[0] -= 1
                if left[0] == 0:
                    if failed:
                        on_failure(failed[0])
                    else:
                        self._settle(delivery, True)

            for fut in futures:
                fut.on_done(one_done)

        if threading.get_ident() == self._io_ident:
            go()
        else:
            self._call(go)

    def close(self) -> None:
        """Close channels and connections and stop the I/O thread."""
        done = threading.Event()

        def go() -> None:
            self._closing = True
            for conn in (self._read_conn, self._write_conn):
                if conn is not None and not (conn.is_closed or conn.is_closing):
                    try:
                        conn.close()
                    except Exception as exc:  # noqa: BLE001 - closing anyway
                        log.debug("Closing a connection failed", extra={"reason": type(exc).__name__})
            self._ioloop.call_later(0.3, self._ioloop.stop)
            done.set()

        if self._thread is None or not self._thread.is_alive():
            return
        self._call(go)
        done.wait(5)
        self._thread.join(5)

    # ------------------------------------------------------------------ I/O thread
    def _call(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the I/O thread. Calls are batched: one loop wake-up (a socket write and a GIL
        hand-off) serves every call queued before the loop gets to them.

        (Tried and measured worse: skipping the wake-up while other deliveries are in flight — the
        added latency cost more throughput than the saved wake-ups.)
        """
        with self._inbox_lock:
            self._inbox.append(fn)
            if self._wake_pending:
                return
            self._wake_pending = True
        self._ioloop.add_callback_threadsafe(self._drain_inbox)

    def _drain_inbox(self) -> None:
        while True:
            with self._inbox_lock:
                if not self._inbox:
                    self._wake_pending = False
                    return
                batch = list(self._inbox)
                self._inbox.clear()
            for fn in batch:
                try:
                    fn()
                except Exception as exc:  # one bad callback must not stop the loop
                    log.error("AMQP I/O callback failed", exc_info=exc)

    def call_soon(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the I/O thread in a later loop iteration (from any thread)."""
        if threading.get_ident() == self._io_ident:
            self._ioloop.call_later(0, fn)
        else:
            self._call(fn)

    def call_later(self, delay_s: float, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the I/O thread in ``delay_s`` seconds (I/O thread only)."""
        self._ioloop.call_later(delay_s, fn)

    def on_io_thread(self) -> bool:
        return threading.get_ident() == self._io_ident

    def _run_loop(self) -> None:
        self._io_ident = threading.get_ident()
        try:
            self._ioloop.start()
        except Exception as exc:
            log.error("AMQP I/O loop failed", exc_info=exc)
        finally:
            try:
                self._ioloop.close()
            except Exception as exc:  # noqa: BLE001 - the thread ends either way
                log.debug("Closing the I/O loop failed", extra={"reason": type(exc).__name__})

    def _mark_started(self) -> None:
        self._started = True

    def _params(self, role: str) -> pika.URLParameters:
        params = pika.URLParameters(self._uri)
        params.client_properties = {"connection_name": f"{self._host}-{role}"}
        params.connection_attempts = 1
        return params

    def _open_read(self) -> None:
        self._read_conn = self._open("read", self._on_read_channel) or self._read_conn

    def _open_write(self) -> None:
        self._write_conn = self._open("write", self._on_write_channel) or self._write_conn

    def _open(self, role: str, on_channel: Callable[[Any], None]) -> pika.SelectConnection | None:
        """Open the ``role`` connection, then its channel (``None`` once closing)."""
        if self._closing:
            return None
        return pika.SelectConnection(
            self._params(role),
            on_open_callback=lambda c: c.channel(on_open_callback=on_channel),
            on_open_error_callback=lambda c, e: self._conn_failed(role, e),
            on_close_callback=lambda c, e: self._conn_closed(role, c, e),
            custom_ioloop=self._ioloop,
        )

    def _reconnect_delay(self, role: str) -> float:
        n = self._failures[role]
        if not self._started:
            return self._reconnect_timeout_s
        return min(self._reconnect_timeout_s * (2 ** min(n, 16)), _MAX_RECONNECT_DELAY_S)

    def _conn_failed(self, role: str, err: BaseException | str) -> None:
        self._failures[role] += 1
        if self._closing:
            return
        if not self._started and self._failures[role] > self._reconnect_attempts:
            self._start_error = AmqpError(f"{role} connection failed: {type(err).__name__}")
            self._start_failed.set()
            return
        log.warning("AMQP connection failed, retrying", extra={"connection": role})
        opener = self._open_read if role == "read" else self._open_write
        self._ioloop.call_later(self._reconnect_delay(role), opener)

    def _conn_closed(self, role: str, conn: Any, reason: BaseException) -> None:
        if role == "read":
            self._read_ch = None
            self._read_gen += 1
            self._consumer_tag = None
        else:
            self._write_ch = None
            self._requeue_unconfirmed("the connection to the broker closed")
        self._ready[role].clear()
        if self._closing:
            return
        log.warning("AMQP connection closed, reconnecting", extra={"connection": role,
                                                                   "reason": type(reason).__name__})
        opener = self._open_read if role == "read" else self._open_write
        self._ioloop.call_later(self._reconnect_delay(role), opener)

    # -- read side
    def _on_read_channel(self, ch: Any) -> None:
        self._read_ch = ch
        _skip_callback_lookup_for_deliveries(ch.connection)
        ch.add_on_close_callback(self._read_channel_closed)
        ch.basic_qos(prefetch_count=self._prefetch, callback=lambda _f: self._read_ready(ch))

    def _read_ready(self, ch: Any) -> None:
        self._failures["read"] = 0
        self._ready["read"].set()
        if self._queue is not None:
            self._basic_consume()

    def _read_channel_closed(self, ch: Any, reason: BaseException) -> None:
        if ch is not self._read_ch:
            return
        self._read_ch = None
        self._read_gen += 1
        self._consumer_tag = None
        waiter, self._consume_waiter = self._consume_waiter, None
        if waiter is not None:
            # start-up consume refused: report it (Node's message contains "BasicConsume; 404")
            self._queue = None
            waiter.set_done(AmqpError(f"BasicConsume failed: {reason}"))
        if self._closing:
            return
        conn = self._read_conn
        if conn is not None and conn.is_open:
            self._ioloop.call_later(self._reconnect_delay("read"),
                                    lambda: conn.is_open and conn.channel(on_open_callback=self._on_read_channel))

    def _basic_consume(self) -> None:
        ch = self._read_ch
        if ch is None or not ch.is_open or self._queue is None:
            return
        gen = self._read_gen

        def on_message(_ch: Any, method: Any, props: pika.BasicProperties, body: bytes) -> None:
            self._on_message(gen, method, props, body)

        def on_ok(frame: Any) -> None:
            self._consumer_tag = frame.method.consumer_tag
            waiter, self._consume_waiter = self._consume_waiter, None
            if waiter is not None:
                waiter.set_done()

        ch.basic_consume(self._queue, on_message, auto_ack=False, callback=on_ok)

    def _on_message(self, gen: int, method: Any, props: pika.BasicProperties, body: bytes) -> None:
        ch = self._read_ch
        undecodable = getattr(props, "undecodable", None)
        if undecodable:
            # headers no decoder can read (amqp_fields): processing it is impossible, and requeueing it
            # would bring it straight back — reject it (dead-lettered where the queue has a DLX)
            if ch is not None and gen == self._read_gen:
                ch.basic_reject(method.delivery_tag, requeue=False)
            log.error("Delivery with undecodable AMQP headers rejected",
                      extra={"reason": undecodable, "deliveryTag": method.delivery_tag,
                             "redelivered": bool(method.redelivered)})
            return
        if props.headers is None:
            # no header table at all: Node rejects at once without output
            if ch is not None and gen == self._read_gen:
                ch.basic_reject(method.delivery_tag, requeue=False)
            log.warning("Delivery without headers rejected")
            return
        d = Delivery(body, props, method.delivery_tag, gen, bool(method.redelivered))
        key = d.key
        if key is not None:
            outcome = self._finished.pop(key, None)
            if outcome is not None and d.redelivered:
                # A broker redelivery of a message this process already finished (its ack was lost with
                # the old channel): settle it the same way instead of processing it twice. Only a
                # redelivery of the same message qualifies: a rebound copy (same messageId, next
                # reboundIteration) is new, also when it is redelivered after another consumer held it.
                self._ack_or_reject(d, outcome)
                log.info("Redelivered message settled without reprocessing", extra={"messageId": d.message_id})
                return
            running = self._processing.get(key)
            if running is not None and running.generation != gen:
                # redelivery of a message still in processing: let that processing settle this copy
                running.delivery_tag = d.delivery_tag
                running.generation = gen
                log.info("Redelivered message is still in processing; not processing twice",
                         extra={"messageId": d.message_id})
                return
            if running is None:
                self._processing[key] = d
        self._active += 1
        self._defer(lambda: self._dispatch(d))

    def _dispatch(self, d: Delivery) -> None:
        try:
            self._on_delivery(d)
        except Exception as exc:
            log.error("Failed to dispatch delivery", exc_info=exc)
            self._settle(d, False)

    def _defer(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` after the frames of the current read are handled. Waking worker threads one by
        one in the middle of a burst makes them fight the I/O thread for the GIL; waking them together
        when the I/O thread is about to wait in epoll does not. With no worker threads (a cooperative
        pool, greenlet mode) there is nothing to fight, and waiting a loop iteration would only add latency."""
        if self.immediate:
            fn()
            return
        if not self._deferred:
            self._ioloop.call_later(0, self._run_deferred)
        self._deferred.append(fn)

    def _run_deferred(self) -> None:
        batch, self._deferred = self._deferred, []
        for fn in batch:
            try:
                fn()
            except Exception as exc:
                log.error("AMQP I/O callback failed", exc_info=exc)
        self._drain_inbox()

    def _ack_or_reject(self, d: Delivery, ack: bool) -> bool:
        ch = self._read_ch
        if ch is None or not ch.is_open or d.generation != self._read_gen:
            return False
        frame = (ack_frame if ack else reject_frame)(ch.channel_number, d.delivery_tag)
        if not _send_raw(ch, frame, 1):
            if ack:
                ch.basic_ack(d.delivery_tag)
            else:
                ch.basic_reject(d.delivery_tag, requeue=False)
        return True

    def _settle(self, d: Delivery, ack: bool) -> None:
        if d.settled:
            # a second outcome for one delivery (e.g. an error publish that failed after the delivery was
            # settled): a second ack/reject of the tag would make the broker close the channel
            # ("unknown delivery tag") and the count of active deliveries would go wrong
            log.warning("Delivery already settled; second outcome ignored",
                        extra={"messageId": d.message_id, "ack": ack})
            return
        d.settled = True
        key = d.key
        if key is not None and self._processing.get(key) is d:
            del self._processing[key]
        sent = self._ack_or_reject(d, ack)
        if key is not None:
            # Remember the outcome even when the ack went out: a connection lost before the broker
            # processed it brings the message back (redelivered) and it must not run twice.
            self._finished[key] = ack
            self._finished.move_to_end(key)
            while len(self._finished) > _MAX_FINISHED:
                self._finished.popitem(last=False)
        if not sent:
            log.info("Delivery could not be settled on its channel; waiting for the redelivery",
                     extra={"messageId": d.message_id})
        self._active -= 1

    # -- write side
    def _on_write_channel(self, ch: Any) -> None:
        ch.add_on_close_callback(self._write_channel_closed)
        ch.add_on_return_callback(self._on_return)
        ch.confirm_delivery(ack_nack_callback=self._on_confirm, callback=lambda _f: self._write_ready(ch))

    def _write_ready(self, ch: Any) -> None:
        self._write_ch = ch
        self._next_tag = 0
        self._failures["write"] = 0
        self._ready["write"].set()
        while self._waiting and self._write_ch is ch:
            self._publish(self._waiting.popleft())

    def _write_channel_closed(self, ch: Any, reason: BaseException) -> None:
        if self._write_ch is ch:
            self._write_ch = None
        self._requeue_unconfirmed()
        if self._closing:
            return
        conn = self._write_conn
        if conn is not None and conn.is_open:
            log.warning("Publish channel closed; reopening", extra={"reason": clip(reason, 200)})
            self._ioloop.call_later(self._reconnect_delay("write"),
                                    lambda: conn.is_open and conn.channel(on_open_callback=self._on_write_channel))

    def _requeue_unconfirmed(self, why: str = "the publish channel closed") -> None:
        """Queue the publishes the closed channel left unconfirmed again, each counting one attempt. One that
        has used up ``publish_retry_attempts`` (unlimited by default), or whose channel closed
        :data:`MAX_CLOSURES` times, fails (its message gets an error and a reject): a publish the broker keeps
        refusing by closing the channel (a deleted exchange, a body over its size limit) cannot hold its
        input, and a graceful shutdown, for ever. Node fails such a publish at the first closure."""
        pending = list(self._unconfirmed.values())
        self._unconfirmed.clear()
        for req in reversed(pending):
            req.iteration += 1
            req.closures += 1
            if req.iteration >= self._retry_attempts or req.closures >= MAX_CLOSURES:
                mid = (req.properties.headers or {}).get("messageId")
                self._defer(functools.partial(req.future.set_done,
                                              AmqpError(f"Failed on publishing {mid} message to MQ: {why}")))
                continue
            req.set_retry_header()
            self._waiting.appendleft(req)

    def _publish(self, req: _Publish) -> None:
        ch = self._write_ch
        if ch is None or not ch.is_open:
            self._waiting.append(req)
            return
        problem = unusable_routing_key(req.routing_key)
        if problem is not None:
            # no retry can help: fail this publish at once (its message is rejected, the step goes on)
            req.future.set_done(AmqpError(f"cannot publish: {problem}"))
            return
        try:
            if not _publish_raw(ch, req):
                ch.basic_publish(req.exchange, req.routing_key, req.body, req.properties,
                                 mandatory=req.mandatory)
        except (pika.exceptions.AMQPConnectionError, pika.exceptions.AMQPChannelError) as exc:
            self._retry(req, exc)  # the channel or connection went away under us: publish again
            return
        except Exception as exc:  # noqa: BLE001 - the frame cannot be encoded: retrying would loop forever
            log.error("Publish cannot be encoded; failed without retry",
                      extra={"reason": f"{type(exc).__name__}: {clip(exc, 200)}"})
            req.future.set_done(AmqpError(f"cannot publish: {type(exc).__name__}: {clip(exc, 200)}"))
            return
        self._next_tag += 1
        self._unconfirmed[self._next_tag] = req

    def _on_confirm(self, frame: Any) -> None:
        method = frame.method
        ok = isinstance(method, pika.spec.Basic.Ack)
        tag = method.delivery_tag
        if method.multiple:
            done = []
            for t in self._unconfirmed:
                if t > tag:
                    break
                done.append(t)
        else:
            done = [tag]
        for t in done:
            req = self._unconfirmed.pop(t, None)
            if req is None:
                continue
            if ok:
                self._defer(req.future.set_done)
            else:
                self._retry(req, AmqpError("message nacked by the broker"))

    def _retry(self, req: _Publish, err: BaseException) -> None:
        req.iteration += 1
        if req.iteration >= self._retry_attempts:
            mid = (req.properties.headers or {}).get("messageId")
            req.future.set_done(AmqpError(f"Failed on publishing {mid} message to MQ: {err}"))
            return
        req.set_retry_header()
        delay = min(self._retry_delay_ms * 2 ** (req.iteration - 1), self._retry_max_ms) / 1000.0
        log.warning("Publish failed; retrying", extra={"iteration": req.iteration, "reason": clip(err, 200)})
        self._ioloop.call_later(delay, lambda: self._publish(req))

    def _on_return(self, _ch: Any, method: Any, _props: Any, _body: bytes) -> None:
        # mandatory publish with no bound queue: Node ignores it too; make it visible in the log
        log.warning("Message returned by the broker (unroutable)",
                    extra={"exchange": method.exchange, "routingKey": method.routing_key})
