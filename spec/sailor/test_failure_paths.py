"""Failures that must never leave a delivery unsettled, settled twice, or acked too early.

* component code raising a ``BaseException`` that is not an ``Exception`` (``SystemExit``, a stray
  ``CancelledError``) is a component error: error message, reject, a log line, and the worker lives on;
* a delivery is settled at most once, even when publishing an error fails after it was settled;
* non-blocking publishes emitted from several threads at once all stay pending until confirmed.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import types
import uuid
from collections.abc import Iterator
from typing import Any

import greenlet
import pytest
from elasticio_sailor.amqp import AmqpTransport, Delivery
from elasticio_sailor.amqp_fields import TolerantProperties
from elasticio_sailor.execution import MessageExecution
from elasticio_sailor.executor import TaskContext, run_function
from elasticio_sailor.pools import WorkerPool

from spec.sailor.conftest import StartSailor
from spec.sailor.helpers import PlatformSide, SailorProc, wait_until
from spec.support.objectstorage import ObjectStorageServer


# ---------------------------------------------------------------------------------------------- unit
class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def on_event(self, ctx: TaskContext, event: str, payload: Any) -> None:
        self.events.append((event, payload))


def run_raising(exc: BaseException) -> Recorder:
    def process(*_args: Any) -> None:
        raise exc

    module = types.ModuleType("m")
    module.process = process  # type: ignore[attr-defined]
    rec = Recorder()
    run_function(module, TaskContext(rec), {"body": {}}, {}, {})
    return rec


@pytest.mark.parametrize("exc", [SystemExit(3), asyncio.CancelledError("cancelled"), GeneratorExit()],
                         ids=["SystemExit", "CancelledError", "GeneratorExit"])
def test_given_a_base_exception_from_the_component_then_error_then_end(
    exc: BaseException, caplog: pytest.LogCaptureFixture
) -> None:
    rec = run_raising(exc)
    assert [e for e, _ in rec.events] == ["error", "end"]
    assert rec.events[0][1] is exc
    assert any("not an Exception" in r.getMessage() for r in caplog.records)


def test_given_keyboard_interrupt_on_the_main_thread_then_it_propagates() -> None:
    assert threading.current_thread() is threading.main_thread()
    with pytest.raises(KeyboardInterrupt):
        run_raising(KeyboardInterrupt())


def run_raising_on_a_thread(exc: BaseException) -> Recorder:
    out: list[Recorder] = []
    t = threading.Thread(target=lambda: out.append(run_raising(exc)))
    t.start()
    t.join(10)
    return out[0]


@pytest.mark.parametrize("exc", [KeyboardInterrupt(), greenlet.GreenletExit()],
                         ids=["KeyboardInterrupt", "GreenletExit"])
def test_given_an_interrupt_raised_on_a_worker_thread_then_it_is_an_error(exc: BaseException) -> None:
    # neither stops anything there: a worker thread is not the main thread, nor a message greenlet of ours
    assert [e for e, _ in run_raising_on_a_thread(exc).events] == ["error", "end"]


@pytest.mark.parametrize("exc", [SystemExit(3), greenlet.GreenletExit()], ids=["SystemExit", "GreenletExit"])
def test_given_a_task_raising_a_base_exception_then_the_worker_thread_lives_on(exc: BaseException) -> None:
    pool = WorkerPool(1)
    done = threading.Event()

    def boom() -> None:
        raise exc

    try:
        pool.submit(boom)
        pool.submit(done.set)
        assert done.wait(10), "the only worker died with the first task"
    finally:
        pool.shutdown()


class FakeConnection:
    def __init__(self) -> None:
        self.is_closed = False
        self._transport = object()
        self.bytes_sent = 0
        self.frames_sent = 0
        self.written: list[bytes] = []

    def _adapter_emit_data(self, data: bytes) -> None:
        self.written.append(data)


class FakeChannel:
    is_open = True
    channel_number = 1

    def __init__(self) -> None:
        self.connection = FakeConnection()


def test_given_a_delivery_settled_twice_then_one_ack_or_reject_and_one_decrement() -> None:
    transport = AmqpTransport("amqp://guest:guest@127.0.0.1:1/", prefetch=1, on_delivery=lambda _d: None)
    ch = FakeChannel()
    transport._read_ch = ch
    d = Delivery(b"{}", TolerantProperties(headers={"messageId": "m-1"}), 7, transport._read_gen, False)
    transport._active = 1
    transport._settle(d, True)
    transport._settle(d, False)  # e.g. the error publish of a component that emitted end, then raised
    assert len(ch.connection.written) == 1  # a second frame for tag 7: "unknown delivery tag", channel closed
    assert transport._active == 0  # -1 before: wait_idle (graceful shutdown) never returned
    transport._ioloop.close()


class FakeFuture:
    def __init__(self) -> None:
        self.done = False
        self.error: BaseException | None = None
        self.waited = False

    def wait(self) -> None:
        self.waited = True
        self.done = True


class CountingTransport:
    def __init__(self) -> None:
        self.created: list[FakeFuture] = []
        self.lock = threading.Lock()

    def publish(self, *_args: Any, **_kwargs: Any) -> FakeFuture:
        f = FakeFuture()
        with self.lock:
            self.created.append(f)
        return f


def execution(transport: Any) -> MessageExecution:
    step = types.SimpleNamespace(
        transport=transport, throttles={}, props=lambda _h: None, static_headers={},
        amqp=types.SimpleNamespace(PUBLISH_MESSAGES_TO="x"),
        settings=types.SimpleNamespace(additional_headers={}),
    )
    delivery = Delivery(b"{}", TolerantProperties(headers={"messageId": "m-1"}), 1, 0, False)
    return MessageExecution(step, delivery)  # type: ignore[arg-type]


@pytest.fixture
def fast_switching() -> Iterator[None]:
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


@pytest.mark.usefixtures("fast_switching")
def test_given_data_emitted_from_several_threads_then_no_publish_drops_out_of_pending() -> None:
    # The loss needs a thread switch between the trim's filtered copy and its write-back: rare per emit,
    # so several rounds of 4 × 3,000 emits (before the fix each round lost ~100 futures in 1 of 3 runs)
    for _ in range(10):
        transport = CountingTransport()
        ex = execution(transport)

        def emitter(ex: MessageExecution = ex) -> None:
            for _ in range(3000):
                ex._publish("rk", b"b", {}, None, wait=False)

        threads = [threading.Thread(target=emitter) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        pending = {id(f) for f in ex.pending}
        lost = [f for f in transport.created if not f.waited and id(f) not in pending]
        # lost futures are outputs the input's ack would not wait for
        assert len(transport.created) == 12000
        assert len(lost) == 0


# ------------------------------------------------------------------------------- real broker, process
def finish(sailor: SailorProc, timeout: float = 20) -> list[dict[str, Any]]:
    """SIGTERM must end the process cleanly (a delivery never settled, or settled twice, made it hang)."""
    assert sailor.terminate(timeout=timeout) == 0
    return list(sailor.log_lines())


def nack_errors(platform: PlatformSide) -> str:
    """Make the broker nack every publish to the error key (a queue that refuses everything)."""
    q = platform.name + ":nack"
    platform.ch.queue_declare(q, arguments={"x-max-length": 0, "x-overflow": "reject-publish"})
    platform.ch.queue_bind(q, platform.exchange, platform.keys["error"])
    return q


def error_message(platform: PlatformSide, out: Any) -> dict[str, Any]:
    return dict(platform.cipher.decrypt(json.loads(out.body)["error"].encode(), 1))


@pytest.mark.parametrize("concurrency", ["threads", "greenlet"])
def test_given_a_component_raising_system_exit_or_cancelled_then_error_reject_and_the_step_goes_on(
    platform: PlatformSide, start_sailor: StartSailor, concurrency: str
) -> None:
    sailor = start_sailor("base_exit", SAILOR_CONCURRENCY=concurrency)  # prefetch 1: one worker
    platform.publish({"body": {"exit": True}})
    platform.publish({"body": {"cancel": True}})
    platform.publish({"body": {"n": 3}})
    errors = platform.get("error", 2)
    assert [error_message(platform, e)["name"] for e in errors] == ["SystemExit", "CancelledError"]
    [out] = platform.get("message")
    assert platform.decode(out)["body"] == {"n": 3}
    wait_until(lambda: platform.count(platform.dead) == 2, what="both failing inputs rejected")
    lines = finish(sailor)
    assert len([x for x in lines if "not an Exception" in x["msg"]]) == 2


def test_given_end_then_raise_and_the_error_publish_fails_then_the_input_is_settled_once(
    platform: PlatformSide, start_sailor: StartSailor
) -> None:
    nack = nack_errors(platform)
    try:
        sailor = start_sailor("end_then_raise", ELASTICIO_AMQP_PUBLISH_RETRY_ATTEMPTS="1")
        platform.publish({"body": {"n": 1}})
        sailor_log = sailor.log_path
        wait_until(lambda: "Delivery already settled" in sailor_log.read_text(errors="replace"),
                   what="the second outcome ignored")
        platform.publish({"body": {"n": 2}})
        wait_until(lambda: sailor_log.read_text(errors="replace").count("Delivery already settled") == 2,
                   what="the second message processed on the same channel")
        lines = finish(sailor)  # before: _active went to -1 and the graceful shutdown never ended
    finally:
        platform.ch.queue_delete(nack)
    assert platform.count(platform.dead) == 0  # acked at end, as emitted; not rejected as well
    assert platform.unacked_or_ready() == 0
    assert not [x for x in lines if "channel closed" in x["msg"].lower() or "reconnecting" in x["msg"]]


def test_given_an_unfetchable_body_and_the_error_publish_fails_then_the_input_is_rejected_once(
    platform: PlatformSide, start_sailor: StartSailor
) -> None:
    nack = nack_errors(platform)
    try:
        with ObjectStorageServer("os-token-" + uuid.uuid4().hex) as storage:
            sailor = start_sailor("echo", ELASTICIO_AMQP_PUBLISH_RETRY_ATTEMPTS="1", REQUEST_MAX_RETRY="1",
                                  ELASTICIO_OBJECT_STORAGE_URI=storage.url,
                                  ELASTICIO_OBJECT_STORAGE_TOKEN=storage.token)
            missing = {"body": {}, "headers": {"x-ipaas-object-storage-id": str(uuid.uuid4())}}
            platform.publish(None, raw=platform.cipher.encrypt(missing, 1))
            platform.publish({"body": {"n": 2}})
            [out] = platform.get("message")
            assert platform.decode(out)["body"] == {"n": 2}
            wait_until(lambda: platform.count(platform.dead) == 1, what="the input rejected")
            lines = finish(sailor)
    finally:
        platform.ch.queue_delete(nack)
    assert [x for x in lines if x["msg"] == "Publishing the error failed"]
    assert not [x for x in lines if "Delivery already settled" in x["msg"] or "reconnecting" in x["msg"]]


def test_given_a_publish_the_broker_refuses_by_closing_the_channel_then_its_retry_attempts_bound_it(
    platform: PlatformSide, start_sailor: StartSailor
) -> None:
    # The exchange is gone: every publish to it closes the publish channel (404). With 3 attempts, the data
    # output fails after 3, its error after 3 more; the input is rejected and a graceful stop completes.
    sailor = start_sailor("echo", ELASTICIO_AMQP_PUBLISH_RETRY_ATTEMPTS="3",
                          ELASTICIO_AMQP_PUBLISH_RETRY_DELAY="10")
    platform.ch.exchange_delete(platform.exchange)
    platform.publish({"body": {"x": 1}})
    wait_until(lambda: platform.count(platform.dead) == 1, 30, "the input rejected after its publish attempts")
    reopened = sailor.log().count("Publish channel closed; reopening")
    assert 3 <= reopened <= 8, reopened
    assert "Failed on publishing" in sailor.log() and "the publish channel closed" in sailor.log()
    assert sailor.terminate() == 0


def test_given_the_default_unlimited_publish_attempts_then_channel_closures_still_end_a_publish() -> None:
    # Node fails a publish at the first closure of its channel; this sailor republishes it (a broker restart is
    # survived), but not for ever when the publish itself makes the broker close the channel
    import dataclasses

    import pika
    from elasticio_sailor.amqp import MAX_CLOSURES, _Publish
    from elasticio_sailor.settings import Settings

    attempts = next(f.default for f in dataclasses.fields(Settings) if f.name == "AMQP_PUBLISH_RETRY_ATTEMPTS")
    assert attempts == float("inf")
    transport = AmqpTransport("amqp://127.0.0.1:9/", prefetch=1, on_delivery=lambda d: None,
                              publish_retry_attempts=attempts)
    transport.immediate = True
    req = _Publish("ex", "rk", b"{}", pika.BasicProperties(headers={"messageId": "m"}), False)
    closures = 0
    while not req.future.done and closures < 100:
        transport._unconfirmed[1] = req
        transport._requeue_unconfirmed()
        transport._waiting.clear()
        closures += 1
    assert req.future.done and closures == MAX_CLOSURES
    assert "the publish channel closed" in str(req.future._error)
