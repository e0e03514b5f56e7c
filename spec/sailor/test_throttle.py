"""Rate limits (DATA/ERROR/SNAPSHOT_RATE_LIMIT, docs/platform-contract.md §2.2): p-throttle's windows, fake clock."""

from __future__ import annotations

from elasticio_sailor.pools import Throttle


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 6))
        self.now += seconds


def test_given_limit_1_per_110ms_when_11_calls_at_once_then_each_waits_one_more_window() -> None:
    fake = FakeClock()
    throttle = Throttle(1, 110, clock=fake.clock, sleep=fake.sleep)
    for _ in range(11):
        throttle.acquire()
    assert fake.sleeps == [0.11] * 10
    assert round(fake.now - 1000.0, 6) == 1.1


def test_given_limit_10_when_25_calls_at_once_then_three_windows() -> None:
    fake = FakeClock()
    throttle = Throttle(10, 100, clock=fake.clock, sleep=fake.sleep)
    waits = []
    for _ in range(25):
        before = fake.now
        throttle.acquire()
        waits.append(round(fake.now - before, 6))
    assert waits == [0.0] * 10 + [0.1] + [0.0] * 9 + [0.1] + [0.0] * 4


def test_given_calls_spaced_beyond_the_window_when_acquiring_then_never_waits() -> None:
    fake = FakeClock()
    throttle = Throttle(1, 100, clock=fake.clock, sleep=fake.sleep)
    for _ in range(5):
        throttle.acquire()
        fake.now += 0.2
    assert fake.sleeps == []
