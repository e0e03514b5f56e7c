"""Capped exponential backoff with full jitter, and client-side pacing to the documented quotas.

Both take their clock, sleep and random source as parameters so tests are deterministic.
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

    def done(self, mark: list[float]) -> None:
        """Record that the call holding ``mark`` completed (its reply or failure arrived)."""
        with self._lock:
            mark[0] = max(mark[0], self._clock())
            mark[1] = 1.0
            self._lock.notify_all()

    def penalise(self, seconds: float) -> None:
        """Push the next slot back (after a throttling reply) so the whole process slows down."""
        with self._lock:
            self._next = max(self._next, self._clock() + seconds)


_PACERS: dict[tuple[str, str, str, float], Pacer] = {}
_PACERS_LOCK = threading.Lock()


def shared_pacer(account_key: str, region: str, quota_group: str, rate: float) -> Pacer:
    """The process-wide pacer of one quota (quotas are per account, region and operation).

    Steps configured with different rates for the same account get separate pacers: each keeps its own
    promise, and the user chose the rates.
    """
    key = (account_key, region, quota_group, rate)
    with _PACERS_LOCK:
        pacer = _PACERS.get(key)
        if pacer is None:
            pacer = _PACERS[key] = Pacer(rate)
        return pacer
