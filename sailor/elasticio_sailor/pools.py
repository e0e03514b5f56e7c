"""Where messages run: a pool of worker threads (default) or greenlets on the AMQP I/O thread, and the
publish throttles whose waits each pool implements its own way.

Everything that knows about greenlets on the sailor's side is here (``SAILOR_CONCURRENCY=greenlet``):
the rest of the flow step only calls the :class:`Pool` interface.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

try:  # optional, for SAILOR_CONCURRENCY=greenlet
    import greenlet as _greenlet
except ImportError:  # pragma: no cover
    _greenlet = None

from .amqp import AmqpTransport
from .executor import in_spawned_greenlet

log = logging.getLogger("sailor")
T = TypeVar("T")

CONCURRENCY_MODES = ("threads", "greenlet")
MAX_WORKERS = 64  # worker threads beyond this only add memory; deliveries queue for a free worker


class Pool(Protocol):
    """Runs message processing; knows how the current message may wait."""

    def submit(self, fn: Callable[..., None], *args: Any) -> None:
        """Run ``fn(*args)`` as one message's processing (errors are logged)."""

    def sleep(self, delay_s: float) -> None:
        """Wait ``delay_s`` seconds inside a message (throttles)."""

    def run_blocking(self, fn: Callable[[], T]) -> T:
        """Run blocking I/O (object storage) for the current message and return its result."""

    def shutdown(self) -> None:
        """Finish queued work and stop."""


def check_concurrency(mode: str) -> None:
    """Raise ValueError for an unknown ``SAILOR_CONCURRENCY`` or a missing ``greenlet`` package."""
    if mode not in CONCURRENCY_MODES:
        raise ValueError("SAILOR_CONCURRENCY must be 'threads' or 'greenlet'")
    if mode == "greenlet" and _greenlet is None:
        raise ValueError("SAILOR_CONCURRENCY=greenlet needs the 'greenlet' package")


def make_pool(mode: str, prefetch: int, transport: AmqpTransport) -> Pool:
    """The pool of ``SAILOR_CONCURRENCY`` ``mode`` (checked with :func:`check_concurrency`)."""
    check_concurrency(mode)
    if mode == "greenlet":
        return GreenletPool(transport)
    return WorkerPool(max(1, min(prefetch, MAX_WORKERS)))


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


def _run_task(fn: Callable[..., None], args: tuple[Any, ...]) -> None:
    """Run one submitted task; whatever it raises is logged, never allowed to end the worker thread
    (or reach the I/O loop): a dead worker would leave its prefetch slot stuck and SIGTERM waiting."""
    try:
        fn(*args)
    except BaseException as exc:
        if _greenlet is not None and isinstance(exc, _greenlet.GreenletExit) and in_spawned_greenlet():
            raise  # a message greenlet is being killed: let it end (on a worker thread it is logged below)
        log.error("Worker task failed", exc_info=exc)


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
            _run_task(fn, args)

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
        # deliveries and confirm completions run inline on the I/O thread, in the greenlets started here;
        # a message greenlet waiting for its publish confirm parks (gives the loop back) instead of blocking
        transport.immediate = True
        transport.park = self._park

    @staticmethod
    def _park(register: Callable[[Callable[[], None]], None]) -> None:
        """The transport's :data:`~elasticio_sailor.amqp.Park` for message greenlets."""
        assert _greenlet is not None
        current = _greenlet.getcurrent()
        if current.parent is None:  # the loop itself (not a message greenlet): the caller blocks
            return
        register(current.switch)
        current.parent.switch()

    def submit(self, fn: Callable[..., None], *args: Any) -> None:
        """Start ``fn(*args)`` in a new greenlet; from a message greenlet, after the current burst."""
        assert _greenlet is not None
        current = _greenlet.getcurrent()
        if self._transport.on_io_thread() and current.parent is None:
            # errors are logged in the greenlet: one that escaped would surface in whichever loop callback
            # resumed it last (and a SystemExit would stop the loop)
            _greenlet.greenlet(_run_task).switch(fn, args)
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
