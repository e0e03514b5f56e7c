"""Capped exponential backoff with full jitter, and client-side pacing to the documented quotas.

Both take their clock, sleep and random source as parameters so tests are deterministic.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

Clock = Callable[[], float]
Sleep = Callable[[float], None]


@dataclass
class Backoff:
    """Full-jitter backoff: attempt n waits uniform(0, min(cap, base * 2**n)) seconds."""

    base: float = 0.2
    cap: float = 5.0
    max_attempts: int = 5
    rand: Callable[[], float] = field(default=random.random)

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (0-based)."""
        ceiling = min(self.cap, self.base * (2 ** attempt))
        return ceiling * self.rand()


class Pacer:
    """Spaces call starts at least ``1/rate`` seconds apart (shared by every client of one quota)."""

    def __init__(self, rate: float, clock: Clock = time.monotonic, sleep: Sleep = time.sleep,
                 margin: float = 0.02) -> None:
        self.interval = 1.0 / (rate * (1.0 - margin))
        self._clock = clock
        self._sleep = sleep
        self._next = float("-inf")
        self._lock = threading.Lock()

    def wait(self) -> float:
        """Block until the next call may start; returns the seconds waited."""
        with self._lock:
            now = self._clock()
            start = max(now, self._next)
            self._next = start + self.interval
        waited = start - now
        if waited > 0:
            self._sleep(waited)
        return waited

    def penalise(self, seconds: float) -> None:
        """Push the next slot back (after a throttling reply) so the whole process slows down."""
        with self._lock:
            self._next = max(self._next, self._clock() + seconds)


_PACERS: dict[tuple[str, str, str], Pacer] = {}
_PACERS_LOCK = threading.Lock()


def shared_pacer(account_key: str, region: str, quota_group: str, rate: float) -> Pacer:
    """The process-wide pacer of one quota (quotas are per account, region and operation)."""
    key = (account_key, region, quota_group)
    with _PACERS_LOCK:
        pacer = _PACERS.get(key)
        if pacer is None:
            pacer = _PACERS[key] = Pacer(rate)
        return pacer
