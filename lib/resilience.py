"""Capped exponential backoff with full jitter, and client-side pacing that adapts to the account's quota.

AWS counts a quota per account and region, shared by every container and flow of the account, and none of
them knows how many others there are. So each process paces itself like TCP congestion control: a sending
rate that drops when the service answers ``ThrottlingException`` and climbs back while it does not, never
above the documented quota (or the configured ``callsPerSecond``), so any number of processes converge to
the account's quota together. The reference is botocore's ``adaptive`` retry mode
(botocore/retries/adaptive.py, throttling.py: a client-side token bucket whose rate follows CUBIC,
https://www.rfc-editor.org/rfc/rfc8312); this is our own implementation with its own rules (a decrease at
most once per round of calls, an absolute ceiling with the :class:`Pacer`'s two timing rules).

Everything takes its clock, sleep and random source as parameters so tests are deterministic.
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from collections.abc import Callable

Clock = Callable[[], float]
Sleep = Callable[[float], None]


class Backoff:
    """Full-jitter backoff: attempt n waits uniform(0, min(cap, base * 2**n)) seconds."""

    def __init__(self, base: float = 0.2, cap: float = 5.0, max_attempts: int = 5,
                 rand: Callable[[], float] = random.random) -> None:
        self.base, self.cap, self.max_attempts, self.rand = base, cap, max_attempts, rand

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (0-based)."""
        ceiling = min(self.cap, self.base * (2 ** attempt))
        return ceiling * self.rand()


class Pacer:
    """Client-side pacing to a per-second quota (shared by every client of one quota).

    Two rules: call starts are at least ``1/rate`` apart, and a call starts at least one second (plus
    ``slack``) after the *completion* of the call ``rate`` calls before it.  A server counts a call
    somewhere between its start and its completion, so the second rule keeps any rolling one-second
    window of the server's clock at ``rate`` calls or fewer, whatever the network and scheduling jitter.
    """

    def __init__(self, rate: float, clock: Clock = time.monotonic, sleep: Sleep = time.sleep,
                 slack: float = 0.002) -> None:
        self.interval = 1.0 / rate
        self.limit = max(1, int(rate))
        self.slack = slack
        self._clock = clock
        self._sleep = sleep
        self._next = float("-inf")
        # One mark per recent call: [start, or completion once done; 1.0 when done else 0.0].
        self._marks: deque[list[float]] = deque(maxlen=self.limit)
        self._lock = threading.Condition()

    def wait(self, stuck_after: float = 60.0) -> list[float]:
        """Block until the next call may start; returns its mark, to be passed to :meth:`done`.

        When ``rate`` calls are already in flight (several threads share the pacer), the next one waits
        for the oldest to complete: its completion time is what the one-second rule is measured from.
        ``stuck_after`` bounds that wait (real seconds), in case a caller never reports completion.
        """
        with self._lock:
            if len(self._marks) == self.limit and not self._marks[0][1]:
                self._lock.wait_for(lambda: len(self._marks) < self.limit or bool(self._marks[0][1]),
                                    timeout=stuck_after)
            now = self._clock()
            start = max(now, self._next)
            if len(self._marks) == self.limit:
                start = max(start, self._marks[0][0] + 1.0 + self.slack)
            mark = [start, 0.0]
            self._marks.append(mark)
            self._next = start + self.interval
        if start > now:
            self._sleep(start - now)
        return mark

    def done(self, mark: list[float], throttled: bool = False) -> None:
        """Record that the call holding ``mark`` completed (its reply or failure arrived).

        ``throttled``: the reply was a throttling error (a fixed-rate pacer ignores it).
        """
        with self._lock:
            mark[0] = max(mark[0], self._clock())
            mark[1] = 1.0
            self._lock.notify_all()

    def penalise(self, seconds: float) -> None:
        """Push the next slot back (after a throttling reply) so the whole process slows down."""
        with self._lock:
            self._next = max(self._next, self._clock() + seconds)


class AdaptiveRate:
    """The sending rate of one quota, shaped like CUBIC (RFC 8312): a multiplicative decrease on
    throttling, a cubic climb back that flattens out at the rate the service accepted, then slow probing
    beyond it; clamped to ``[floor, ceiling]``.

    On a throttling answer the process's *share* is what got through in the last second (its successes;
    all processes' shares together are exactly the account's quota), ``w_max`` becomes that share and the
    rate drops to ``beta * w_max``. Then, ``t`` seconds after the decrease, the rate is

    * ``w_max - (1 - beta) * w_max * (1 - t / recovery) ** 3`` while ``t < recovery`` (back at the share
      within ``recovery`` seconds, flattening as it gets there), and
    * ``w_max + c * (t - recovery) ** 3`` after it (probing for more, slowly at first, faster the longer
      nothing is throttled; ``c`` is ``scale * ceiling``, the same shape for a 5/s and a 1000/s quota).

    A round of calls already on their way when the rate dropped is still counted in the service's window
    of one second: those answers say nothing new, so only a call *started* ``hold`` seconds after the last
    decrease lowers the rate again. A fresh controller starts at ``beta * ceiling`` and climbs to the
    ceiling within ``recovery`` seconds (so new processes joining a busy account do not burst into it).
    Not thread-safe by itself: :class:`AdaptivePacer` holds its lock around every call.
    """

    def __init__(self, ceiling: float, *, beta: float = 0.8, scale: float = 0.001, recovery: float = 1.0,
                 hold: float = 1.0, floor: float = 0.5, clock: Clock = time.monotonic) -> None:
        if not 0.0 < beta < 1.0:
            raise ValueError("beta must be between 0 and 1")
        self.ceiling = float(ceiling)
        self.beta = beta
        self.c = scale * self.ceiling
        self.recovery = recovery
        self.hold = hold
        self.floor = min(floor, self.ceiling)
        self._clock = clock
        self.w_max = self.ceiling
        self.rate = max(self.floor, beta * self.ceiling)
        self.decreased_at = clock()  # where the curve starts (a start, not a decrease)
        self._quiet_until = float("-inf")  # calls started before this do not lower the rate again
        self.decreases = 0
        self._successes: deque[float] = deque(maxlen=int(self.ceiling) + 1)  # recent completion times

    def share(self) -> float:
        """Calls that got through in the last second (at least 1: a share of nothing would stall)."""
        now = self._clock()
        return float(max(1, sum(1 for t in self._successes if t > now - 1.0)))

    def on_throttle(self, started: float) -> bool:
        """A call that started at ``started`` was throttled; True when that lowered the rate."""
        if started < self._quiet_until:
            return False  # part of the round the last decrease already answered
        self.w_max = max(self.floor, min(self.rate, self.share()))
        self.rate = max(self.floor, self.beta * self.w_max)
        self.decreased_at = self._clock()
        self._quiet_until = self.decreased_at + self.hold
        self.decreases += 1
        return True

    def on_success(self) -> None:
        """A call got through: climb along the curve (never above the ceiling)."""
        now = self._clock()
        self._successes.append(now)
        t = now - self.decreased_at
        if t < self.recovery:
            gap = (1.0 - self.beta) * self.w_max * (1.0 - t / self.recovery) ** 3
            rate = self.w_max - gap
        else:
            rate = self.w_max + self.c * (t - self.recovery) ** 3
        self.rate = min(self.ceiling, max(self.floor, rate))


class AdaptivePacer(Pacer):
    """A :class:`Pacer` at the ceiling, with an adaptive rate (:class:`AdaptiveRate`) below it, for one quota.

    Call starts are first spaced ``1 / rate`` apart at the adaptive rate (a token bucket that holds one
    token: no bursts), then wait for the inherited :class:`Pacer` rules at the ceiling, so one process
    alone never exceeds the ceiling in any rolling second, whatever the adaptive rate does. When the rate
    drops, threads already sleeping until a slot given at the old rate queue again at the new one. One
    instance is shared by every thread of the process that calls the same quota (:func:`shared_pacer`).
    """

    def __init__(self, ceiling: float, clock: Clock = time.monotonic, sleep: Sleep = time.sleep,
                 slack: float = 0.002, **control: float) -> None:
        super().__init__(ceiling, clock=clock, sleep=sleep, slack=slack)
        self.ceiling = float(ceiling)
        self.control = AdaptiveRate(ceiling, clock=clock, **control)
        self._next_slot = float("-inf")
        self.throttled = 0  # throttling answers seen (for logs and benchmarks)

    @property
    def rate(self) -> float:
        """The current adaptive rate (calls per second)."""
        return self.control.rate

    def wait(self, stuck_after: float = 60.0) -> list[float]:
        """Block until the next call may start; returns its mark, to be passed to :meth:`done`."""
        for _ in range(8):  # bounded: each round means the rate dropped again while this call slept
            with self._lock:
                decreases = self.control.decreases
                now = self._clock()
                start = max(now, self._next_slot)
                self._next_slot = start + 1.0 / self.control.rate
            if start > now:
                self._sleep(start - now)
            if self.control.decreases == decreases:
                break
        mark = super().wait(stuck_after)  # the ceiling's two rules
        mark.append(mark[0])  # the start, kept: done() overwrites mark[0] with the completion time
        return mark

    def done(self, mark: list[float], throttled: bool = False) -> None:
        """Record the completion; a throttling answer lowers the rate, any other answer lets it climb."""
        started = mark[2] if len(mark) > 2 else mark[0]
        with self._lock:
            mark[0] = max(mark[0], self._clock())
            mark[1] = 1.0
            if throttled:
                self.throttled += 1
                if self.control.on_throttle(started):
                    # slots handed out at the old rate are given up (see wait): respace from now
                    self._next_slot = self._clock() + 1.0 / self.control.rate
            else:
                self.control.on_success()
            self._lock.notify_all()


_PACERS: dict[tuple[str, str, str, float], AdaptivePacer] = {}
_PACERS_LOCK = threading.Lock()


def shared_pacer(account_key: str, region: str, quota_group: str, rate: float) -> AdaptivePacer:
    """The process-wide adaptive pacer of one quota (quotas are per account, region and operation).

    ``rate`` is its ceiling: the documented quota, or the configured ``callsPerSecond``. Steps configured
    with different ceilings for the same account get separate pacers: each keeps its own promise.
    """
    key = (account_key, region, quota_group, rate)
    with _PACERS_LOCK:
        pacer = _PACERS.get(key)
        if pacer is None:
            pacer = _PACERS[key] = AdaptivePacer(rate)
        return pacer
