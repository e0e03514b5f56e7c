"""Capped exponential backoff with full jitter, and client-side pacing that adapts to the account's quota.

AWS counts a quota per account and region, shared by every container and flow of the account, and none of
them knows how many others there are. So each process paces itself like TCP congestion control: a window
of calls per rolling second that shrinks when the service answers ``ThrottlingException`` and grows back
while it does not, never above the documented quota (or the configured ``callsPerSecond``), so any number
of processes converge to the account's quota together. The reference is botocore's ``adaptive`` retry
mode (botocore/retries/adaptive.py and throttling.py: a client-side token bucket whose *rate* drops by a
factor on throttling and climbs back along CUBIC, https://www.rfc-editor.org/rfc/rfc8312); this is our
own implementation, with a *window* (like TCP's congestion window) instead of a rate, because a quota of
``Q`` calls per second is a window of ``Q`` calls in any rolling second: see :class:`AdaptiveWindow`.

Everything takes its clock, sleep and random source as parameters so tests are deterministic.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

Clock = Callable[[], float]
Sleep = Callable[[float], None]

log = logging.getLogger(__name__)


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
    ``slack``, plus a random share of ``gap``) after the *completion* of the call ``limit`` calls before it
    (``limit`` = ``int(rate)``). A server counts a call somewhere between its start and its completion, so
    the second rule keeps any rolling one-second window of the server's clock at ``limit`` calls or fewer,
    whatever the network and scheduling jitter. ``gap`` (:class:`AdaptivePacer`: 20 ms) leaves other
    processes of the account a chance at a slot the moment it frees: without it a process that fills the
    quota takes every slot back within a millisecond or two, and a flow that starts later is throttled on
    every call until the first one stops.
    """

    def __init__(self, rate: float, clock: Clock = time.monotonic, sleep: Sleep = time.sleep,
                 slack: float = 0.002, gap: float = 0.0, rand: Callable[[], float] = random.random) -> None:
        self.interval = 1.0 / rate
        self.limit = max(1, int(rate))
        self.slack = slack
        self.gap = gap
        self._gap_rand = rand
        self._clock = clock
        self._sleep = sleep
        self._next = float("-inf")
        # One mark per recent call (the last ``limit``): [start, or completion once done; 1.0 when done else
        # 0.0; start]
        self._marks: deque[list[float]] = deque()
        self._lock = threading.Condition()

    def wait(self, stuck_after: float = 60.0) -> list[float]:
        """Block until the next call may start; returns its mark, to be passed to :meth:`done`.

        When ``limit`` calls are already in flight (several threads share the pacer), the next one waits
        for the oldest to complete: its completion time is what the one-second rule is measured from.
        ``stuck_after`` bounds that wait (real seconds), in case a caller never reports completion.
        """
        with self._lock:
            mark, now = self._reserve(stuck_after)
        if mark[0] > now:
            self._sleep(mark[0] - now)
        return mark

    def _reserve(self, stuck_after: float) -> tuple[list[float], float]:
        """The next slot under both rules, recorded as a mark (the caller holds the lock); and the time."""
        while len(self._marks) > self.limit:  # the limit shrank (AdaptivePacer): the newest ``limit`` count
            self._marks.popleft()
        if len(self._marks) == self.limit and not self._marks[0][1]:
            self._lock.wait_for(lambda: len(self._marks) < self.limit or bool(self._marks[0][1]),
                                timeout=stuck_after)
        now = self._clock()
        start = max(now, self._next)
        if len(self._marks) >= self.limit:
            reuse = self._marks[-self.limit][0] + 1.0 + self.slack
            start = max(start, reuse + self.gap * self._gap_rand() if self.gap else reuse)
        mark = [start, 0.0, start]
        self._marks.append(mark)
        while len(self._marks) > self.limit:
            self._marks.popleft()
        self._next = start + self.interval
        return mark, now

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


class AdaptiveWindow:
    """How many calls one process may make in any rolling second of one quota: its *window* ``limit``,
    between 1 and the ceiling (the documented quota or ``callsPerSecond``, rounded down).

    The service's quota is itself a window (at most ``Q`` calls counted in any rolling second, shared by
    every process of the account), so if each process keeps its own calls in any second to its window
    (:class:`AdaptivePacer` does), the processes together are never throttled while their windows add up
    to ``Q`` or less, and they use all of it when they add up to ``Q``. A process learns about the others
    only from throttling answers, so the rules below are about what each answer means:

    * **Decrease**: a ``ThrottlingException`` on a call that was not a probe means the account's window is
      full: every process's share of it (the calls that got through in the last second) adds up to
      exactly ``Q``. The throttled process's window drops to its share (:meth:`share`), and at least by
      ``yield_share`` of itself (30 %, rounded down, and at least one ``unit``): so after the processes
      that were throttled have dropped, the windows add up to ``Q`` or less. This is the multiplicative
      decrease of TCP and of botocore's adaptive mode (its factor is 0.7 of the measured rate): a process
      that got half the quota through is halved, one that had all of it (a flow metering alone when
      another starts) gives up 3 units of 10, which the newcomer's probes then take. A round of calls
      already on their way says nothing new, so only a call *started* ``hold`` seconds after the last
      decrease lowers the window again.
    * **Increase** (probing for capacity the others left): after ``probe * limit / ceiling`` seconds (at
      least ``min_probe``; times a random jitter in [0.5, 1.5), so that processes which started together do
      not all probe at once) with no throttling, the window grows by one ``unit`` (a probe). A probe that is
      throttled within ``probe_grace`` seconds failed: the window goes back to where it was, and the wait
      before the next probe doubles (once), so processes that already fill the quota rarely throttle it.
      A probe that held is re-tested ``retest`` seconds later (times the jitter, at least ``probe_grace``):
      one more unit. After two probes in a row that held, the window grows every further quiet second, by
      twice the last step (1, 2, 4, ... units), so a process left alone is back at the ceiling within
      seconds of its first probe that held. A small window probes sooner than a large one. Only a window
      in use grows (its share is at least ``limit - unit``, as TCP validates its window, RFC 7661): an idle
      process does not build up a burst.
    * **Give-back**: a probe that held may have found free room, or it may have taken a unit from another
      process (its call got in just before one of theirs, which was throttled: a *knock*). The prober cannot
      tell which, but when a later probe of the same run fails, the account is full, so the run's gain is
      given back: the window returns to where the run of probes started. Once per level: if the very next
      run reaches the same window and fails again, it keeps what held (the room was free: nobody took it
      back).
    * **Reclaim**: a process that a knock took one unit from (a throttle outside its own probe, window
      below the ceiling) probes back to its old window after ``reclaim`` seconds (times the jitter), one
      unit at a time, up to ``reclaim_tries`` failed attempts, without doubling its wait. With the
      give-back, the unit a knock moved goes back where it was, so two flows that share the account keep
      equal windows and finish their equal work together (without it, the flow left with the smaller window
      finished alone at that window, and two flows ran at 83-89 % of the quota in about one run in five).
    * A throttle outside a probe's grace also voids a failed probe's doubled wait (the window is now below
      the one that probe started from) and ends the run of probes: a probe made before a throttle never
      counts as one that held.

    A fresh window starts at the ceiling: a process alone never waits for a ramp (its :class:`Pacer`
    rules at the ceiling already keep it from throttling itself), and processes that start together find
    their shares on their first throttling answer. Not thread-safe by itself: :class:`AdaptivePacer`
    holds its lock around every call.
    """

    def __init__(self, ceiling: float, *, probe: float = 20.0, min_probe: float = 1.0, hold: float = 1.0,
                 probe_grace: float = 1.5, share_span: float = 1.25, retest: float = 1.5, reclaim: float = 3.0,
                 reclaim_tries: int = 3, yield_share: float = 0.3, clock: Clock = time.monotonic,
                 rand: Callable[[], float] = random.random) -> None:
        if ceiling <= 0:
            raise ValueError("ceiling must be positive")
        self.ceiling = float(ceiling)
        self.cap = max(1, int(ceiling))
        self.unit = max(1, self.cap // 20)
        self.probe, self.min_probe, self.hold, self.probe_grace = probe, min_probe, hold, probe_grace
        self.share_span = share_span
        self.retest, self.reclaim, self.reclaim_tries, self.yield_share = retest, reclaim, reclaim_tries, yield_share
        self._clock = clock
        self._rand = rand
        self._jitter = 1.0  # this wait's share of probe_after (drawn at each change)
        self.limit = self.cap
        self.decreases = 0
        self.changed_at = clock()  # last change of the window (decrease or probe)
        self._quiet_until = float("-inf")  # calls started before this do not lower the window again
        self._held = 0  # probes in a row that were not throttled
        self._probed_at = float("-inf")  # the last probe, while it may still fail (-inf: none)
        self._failed_probes = 0
        self._before_probe = self.cap
        self._run_from = self.cap  # the window the current run of probes started from (give-back)
        self._runs = 0  # runs of probes started so far
        self._gave_back = (-1, -1)  # (run, window) of the last give-back: the next run at that window keeps it
        self._claim = 0  # the window a knock took a unit from, to reclaim (0: none)
        self._failed_reclaims = 0
        self._reclaiming = False  # the last probe is a reclaim
        self._successes: deque[float] = deque(maxlen=self.cap + 1)  # recent completion times

    @property
    def rate(self) -> float:
        """Calls per second at this window: the ceiling itself at the top, else the window."""
        return self.ceiling if self.limit >= self.cap else float(self.limit)

    def share(self) -> int:
        """Calls of this process that got through in the last second, by their completion times.

        A call is counted by the service before it completes, and a window's calls come round a little
        more slowly than once a second (latency and scheduling), so completions are counted over
        ``share_span`` seconds (1.25): a window in use is not mistaken for a smaller one.
        """
        now = self._clock()
        return sum(1 for t in self._successes if t > now - self.share_span)

    def probe_after(self) -> float:
        """Quiet seconds after the last change before the window grows by one unit (without jitter)."""
        wait = max(self.min_probe, self.probe * self.limit / self.cap)
        return wait * (2 if self._failed_probes else 1)

    def _changed(self, now: float) -> None:
        """The window changed at ``now``: the next probe waits its wait times a jitter in [0.5, 1.5), drawn
        now, so processes that started together do not all probe at the same moment."""
        self.changed_at = now
        self._jitter = 0.5 + self._rand()

    def on_throttle(self, started: float) -> bool:
        """A call that started at ``started`` was throttled; True when that lowered the window."""
        if started < self._quiet_until:
            return False  # part of the round the last decrease already answered
        now = self._clock()
        if now - self._probed_at < self.probe_grace:  # the probe failed
            if self._reclaiming:  # no doubling: the unit was this process's a moment ago
                self._failed_reclaims += 1
                if self._failed_reclaims >= self.reclaim_tries:
                    self._claim = 0
                self.limit = max(1, self._before_probe)
            elif (self._held and self._run_from < self._before_probe
                  and self._gave_back != (self._runs - 1, self._before_probe)):
                self._gave_back = (self._runs, self._before_probe)  # the account is full: give the run's gain back
                self._failed_probes = 1
                self.limit = max(1, self._run_from)
            else:  # back to the window before it
                self._failed_probes = 1
                self.limit = max(1, self._before_probe)
        else:  # another process took a unit, or a newcomer wants its share
            self._failed_probes = 0  # the window is now below the one a failed probe started from
            before = self.limit
            cut = max(self.unit, int(before * self.yield_share))
            self.limit = max(1, min(before - cut, self.share()))
            if before < self.cap and self.limit == before - self.unit:  # a knock: take it back soon
                self._claim = max(self._claim, before)
                self._failed_reclaims = 0
        self._changed(now)
        self._quiet_until = now + self.hold
        self._held = 0
        self._probed_at = float("-inf")  # a probe before this throttle cannot count as one that held
        self._reclaiming = False
        self.decreases += 1
        return True

    def on_success(self) -> None:
        """A call got through: the window grows once it has been quiet long enough."""
        now = self._clock()
        self._successes.append(now)
        if self.limit >= self.cap:
            self._claim = 0
            return
        if self._reclaiming and now - self._probed_at >= self.probe_grace:  # the reclaim held
            self._reclaiming = False
            self._probed_at = float("-inf")  # not a probe of a run: it does not start the doubling steps
            if self.limit >= self._claim:
                self._claim = 0
                self._changed(now)  # claimed back in full: the next probe waits the window's own wait
        reclaim = self.limit < self._claim
        probing = self._probed_at > float("-inf")  # a probe of this run is out and not throttled
        if self._held:
            wait = 1.0
        elif reclaim:
            wait = self.reclaim * self._jitter
        elif probing:
            wait = max(self.probe_grace, self.retest * self._jitter)
        else:
            wait = self.probe_after() * self._jitter
        if now - self.changed_at < wait or self.share() < self.limit - self.unit:
            return  # not quiet long enough, or the window is not in use (nothing to learn by growing it)
        if probing and now - self._probed_at >= min(wait, self.probe_grace):
            self._failed_probes = 0  # the last probe held
            self._held += 1
        if not self._held and not reclaim:
            self._run_from = self.limit  # a new run of probes starts here
            self._runs += 1
        self._reclaiming = reclaim
        self._before_probe = self.limit
        step = self.unit if reclaim else self.unit * 2 ** max(0, self._held - 1)
        self.limit = min(self.cap, self.limit + step)
        self._changed(now)
        self._probed_at = now


class AdaptivePacer(Pacer):
    """A :class:`Pacer` whose window adapts to the account's quota (:class:`AdaptiveWindow`).

    The Pacer's two rules apply at the current window ``w``: call starts at least ``1/w`` apart (``1/rate``
    at the ceiling), and each call a second after the completion of the call ``w`` calls before it, so
    this process never has more than ``w`` calls in any rolling second of the server's clock, whatever the
    adaptive window does and never more than the ceiling; a slot is reused after a random ``gap`` of up to
    20 ms more (see :class:`Pacer`). A throttled call was not counted by the service:
    its slot is given back (its retry may use it). When the window shrinks, threads already sleeping until
    a slot given under the old window queue again under the new one; a thread that was waiting for a call in
    flight to complete when the window shrank gets its slot under the new window already, and keeps it. One
    instance is shared by every thread of the process that calls the same quota (:func:`shared_pacer`).
    """

    def __init__(self, ceiling: float, clock: Clock = time.monotonic, sleep: Sleep = time.sleep,
                 slack: float = 0.002, gap: float = 0.02, rand: Callable[[], float] = random.random,
                 **control: Any) -> None:
        super().__init__(ceiling, clock=clock, sleep=sleep, slack=slack, gap=gap, rand=rand)
        self.ceiling = float(ceiling)
        self.control = AdaptiveWindow(ceiling, clock=clock, rand=rand, **control)
        self.throttled = 0  # throttling answers seen (for logs and benchmarks)

    @property
    def rate(self) -> float:
        """The current adaptive rate (calls per second)."""
        return self.control.rate

    def wait(self, stuck_after: float = 60.0) -> list[float]:
        """Block until the next call may start; returns its mark, to be passed to :meth:`done`."""
        for _ in range(8):  # bounded: each round means the window shrank again while this call slept
            with self._lock:
                mark, now = self._reserve(stuck_after)  # may wait for a call in flight (the lock released)
                decreases = self.control.decreases  # the window this slot was given under
            if mark[0] > now:
                self._sleep(mark[0] - now)
            with self._lock:
                if self.control.decreases == decreases:
                    break
                self._forget(mark)  # its slot was given under the old window
        return mark

    def _forget(self, mark: list[float]) -> None:
        for i, m in enumerate(self._marks):
            if m is mark:
                del self._marks[i]
                return

    def done(self, mark: list[float], throttled: bool = False) -> None:
        """Record the completion; a throttling answer shrinks the window, any other answer may grow it."""
        with self._lock:
            mark[0] = max(mark[0], self._clock())
            mark[1] = 1.0
            if throttled:
                self.throttled += 1
                self._forget(mark)  # not counted by the service: the slot is free again
                if self.control.on_throttle(mark[2]):
                    self._apply()
                    self._next = self._clock() + self.interval  # respace from now
            else:
                self.control.on_success()
                self._apply()
            self._lock.notify_all()

    def _apply(self) -> None:
        """The Pacer's rules follow the window."""
        if self.control.limit != self.limit:
            log.info("adaptive pacing: %d calls per rolling second (was %d; %d throttled so far)",
                     self.control.limit, self.limit, self.throttled)
        self.limit = self.control.limit
        self.interval = 1.0 / self.control.rate


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
