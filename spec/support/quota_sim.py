"""An event simulation of processes that share one account's quota, driving the real ``AdaptivePacer``.

Each process has one worker (a step at the platform's prefetch of 1) and its own pacer on a virtual clock;
the service counts a call when it arrives and throttles it when the account already has ``quota`` calls in
the last second (a rolling window, as the emulator counts). A throttled call goes back to the worker's
queue after a short pause (the client's backoff). Deterministic for a seed: the pacers' jitter, the
latencies and the pauses all come from one ``random.Random``. No threads, no sleeps, no sockets: a run of
a few hundred calls takes milliseconds, so tests can run many seeds.

The emulator and the real flow harness measure the same behaviour in ``bench/scale_out.py``; this is the
deterministic proof of the mechanism (spec/connector/test_pacing_sim.py).
"""

from __future__ import annotations

import heapq
import random
from collections import deque
from dataclasses import dataclass, field

from lib.resilience import AdaptivePacer


@dataclass
class Run:
    """What one simulated run did: per process, the virtual times its calls got through."""

    completions: list[list[float]]
    calls: int = 0
    throttled: int = 0
    limits: list[list[tuple[float, int]]] = field(default_factory=list)  # (time, window) after each answer

    @property
    def ends(self) -> list[float]:
        return [c[-1] if c else float("inf") for c in self.completions]

    def first_after(self, process: int, start: float) -> float:
        """Seconds from ``start`` to the first call of ``process`` that got through."""
        return self.completions[process][0] - start if self.completions[process] else float("inf")


def simulate(seed: int, work: tuple[int, ...], starts: tuple[float, ...] | None = None, *, quota: int = 10,
             ceiling: float = 10.0, latency: float = 0.003, pause: float = 0.2, **pacer: float) -> Run:
    """Run processes with ``work[i]`` calls each, process ``i`` starting at ``starts[i]`` (virtual seconds).

    ``latency``: one way, times a random factor in [0.3, 1.3). ``pause``: the longest wait before a
    throttled call is tried again. ``pacer``: keyword arguments for every ``AdaptivePacer``.
    """
    rnd = random.Random(seed)
    now = [0.0]
    pacers = [AdaptivePacer(ceiling, clock=lambda: now[0], sleep=lambda s: None, rand=rnd.random, **pacer)
              for _ in work]
    left = list(work)
    run = Run([[] for _ in work], limits=[[] for _ in work])
    window: deque[float] = deque()  # arrival times of the calls the service counted
    offsets = starts or tuple(0.0 for _ in work)
    events: list[tuple[float, int, int, str, list[float] | None]] = []  # (time, order, process, kind, mark)
    order = 0

    def push(at: float, process: int, kind: str, mark: list[float] | None = None) -> None:
        nonlocal order
        order += 1
        heapq.heappush(events, (at, order, process, kind, mark))

    for i in range(len(work)):
        push(offsets[i] + rnd.random() * 0.02, i, "ready")
    for _ in range(100 * sum(work) + 1000):  # bounded: each call is a handful of events
        if not events:
            break
        at, _, i, kind, mark = heapq.heappop(events)
        now[0] = at
        p = pacers[i]
        if kind == "ready":
            with p._lock:
                mark, _ = p._reserve(60.0)  # the slot; the worker "sleeps" until it (no thread to block)
            push(mark[0] + latency * (0.3 + rnd.random()), i, "arrive", mark)
        elif kind == "arrive":
            run.calls += 1
            while window and window[0] <= at - 1.0:
                window.popleft()
            counted = len(window) < quota
            if counted:
                window.append(at)
            push(at + latency * (0.3 + rnd.random()), i, "ok" if counted else "throttled", mark)
        else:
            assert mark is not None
            p.done(mark, throttled=kind == "throttled")
            run.limits[i].append((at, p.control.limit))
            if kind == "throttled":
                run.throttled += 1
                push(at + pause * rnd.random(), i, "ready")
            else:
                left[i] -= 1
                run.completions[i].append(at)
                if left[i] > 0:
                    push(at + 0.01 * (0.5 + rnd.random()), i, "ready")
    else:
        raise AssertionError("the simulation did not finish within its event budget")
    return run
