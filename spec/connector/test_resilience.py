"""Retries with capped full-jitter backoff, client-side pacing, and idempotent redelivery."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from itertools import pairwise
from typing import TypeVar

import pytest
from metering_emulator.testing import EmulatorServer

from lib.client import MeteringClient, Settings
from lib.operations import OPERATIONS
from lib.resilience import AdaptivePacer, AdaptiveWindow, Backoff, Pacer
from spec.connector.builders import PRODUCT, a_config, a_record, hour_start, run_action

_T = TypeVar("_T")


class FakeClock:
    """A monotonic clock that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_given_full_jitter_then_each_delay_is_uniform_below_a_capped_exponential_ceiling() -> None:
    backoff = Backoff(base=0.5, cap=4.0, max_attempts=8, rand=lambda: 1.0)
    assert [backoff.delay(n) for n in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert Backoff(base=0.5, cap=4.0, rand=lambda: 0.25).delay(2) == 0.5
    assert Backoff(rand=lambda: 0.0).delay(10) == 0.0


def test_given_a_pacer_at_10_per_second_then_call_starts_are_spaced_and_never_burst() -> None:
    clock = FakeClock()
    pacer = Pacer(10, clock=clock, sleep=clock.sleep, slack=0.0)
    starts = []
    for _ in range(25):
        mark = pacer.wait()
        starts.append(clock.now)
        pacer.done(mark)
    assert [b - a for a, b in pairwise(starts)][:9] == pytest.approx([0.1] * 9)
    for first in starts:  # at most 10 starts in any one-second window
        assert len([s for s in starts if first <= s < first + 1.0 - 1e-9]) <= 10


@pytest.mark.parametrize("latencies", [[0.03] * 40, [0.001, 0.25, 0.002, 0.09, 0.4] * 8])
def test_given_jittery_latency_then_each_call_starts_a_second_after_the_one_ten_calls_earlier_ended(
        latencies: list[float]) -> None:
    """The server counts a call somewhere between its start and its end: this keeps its window at 10."""
    clock = FakeClock()
    pacer = Pacer(10, clock=clock, sleep=clock.sleep)
    spans = []
    for latency in latencies:
        mark = pacer.wait()
        start = clock.now
        clock.now += latency
        pacer.done(mark)
        spans.append((start, clock.now))
    for (_, end), (start, _) in zip(spans, spans[10:], strict=False):  # call i with call i+10
        assert start >= end + 1.0
    for (a, _), (b, _) in pairwise(spans):
        assert b - a >= 0.1 - 1e-9


def test_given_a_throttling_reply_then_the_pacer_pushes_every_later_call_back() -> None:
    clock = FakeClock()
    pacer = Pacer(5, clock=clock, sleep=clock.sleep)
    pacer.done(pacer.wait())
    pacer.penalise(3.0)
    pacer.wait()
    assert clock.now == pytest.approx(103.0)
    assert Pacer(5).interval == pytest.approx(0.2) and Pacer(5).limit == 5


def test_given_the_operations_table_then_register_usage_is_paced_at_5_and_the_others_at_10() -> None:
    rates = {name: op.rate_per_second for name, op in OPERATIONS.items()}
    assert rates == {"batchMeterUsage": 10, "meterUsage": 10, "registerUsage": 5, "resolveCustomer": 10}


def test_given_injected_throttling_when_calling_then_it_retries_with_jitter_and_succeeds(
        metering_emulator: EmulatorServer) -> None:
    metering_emulator.admin.add_fault(type="throttle", count=2, operations=["BatchMeterUsage"])
    draws = iter([0.5, 0.25])
    sleeps: list[float] = []
    client = MeteringClient(Settings.from_cfg(a_config(metering_emulator.url)),
                            backoff=Backoff(base=0.02, cap=1.0, max_attempts=5, rand=lambda: next(draws)),
                            sleep=sleeps.append)
    reply = client.call(OPERATIONS["batchMeterUsage"], {"ProductCode": PRODUCT, "UsageRecords": [a_record()]})
    assert reply.attempts == 3 and reply.data["Results"][0]["Status"] == "Success"
    assert sleeps == [0.01, 0.01]  # 0.5 * 0.02, then 0.25 * 0.04
    stats = metering_emulator.admin.stats()["operations"]["BatchMeterUsage"]
    assert stats["throttled"] == 2 and stats["calls"] == 3


@pytest.mark.parametrize("fault", ["error500", "drop"])
def test_given_a_transient_failure_when_calling_then_the_retry_succeeds(
        metering_emulator: EmulatorServer, fault: str) -> None:
    metering_emulator.admin.add_fault(type=fault, count=1, operations=["RegisterUsage"])
    client = MeteringClient(Settings.from_cfg(a_config(metering_emulator.url)),
                            backoff=Backoff(base=0.01, cap=0.02), sleep=lambda s: None)
    reply = client.call(OPERATIONS["registerUsage"], {"ProductCode": PRODUCT, "PublicKeyVersion": 1})
    assert reply.attempts == 2 and reply.data["Signature"].count(".") == 2


def test_given_twelve_calls_in_flight_at_once_then_the_pool_keeps_every_connection_and_reuses_it(
        metering_emulator: EmulatorServer, caplog: pytest.LogCaptureFixture) -> None:
    """A prefetch-12 sailor: no connection is closed on return and re-opened (a TLS handshake on AWS)."""
    threads, rounds = 12, 4
    metering_emulator.admin.set_config(quotas=False)
    # Slow answers: all twelve calls of a round hold their connection at the same time.
    metering_emulator.admin.add_fault(type="latency", latency_ms=150, count=threads * rounds)
    client = MeteringClient(Settings.from_cfg(a_config(metering_emulator.url, callsPerSecond="1000")))
    barrier = threading.Barrier(threads)
    statuses: list[str] = []

    def worker(n: int) -> None:
        for r in range(rounds):
            barrier.wait(timeout=20)  # every thread holds a connection at the same moment
            reply = client.call(OPERATIONS["batchMeterUsage"], {
                "ProductCode": PRODUCT, "UsageRecords": [a_record(quantity=n * rounds + r + 1)]})  # same hour: dupes
            statuses.append(reply.data["Results"][0]["Status"])

    with caplog.at_level(logging.WARNING, logger="urllib3"):
        workers = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
        for t in workers:
            t.start()
        for t in workers:
            t.join(60)
    pools = client._adapter.poolmanager.pools
    opened = sum(pools[key].num_connections for key in pools.keys())
    assert len(statuses) == threads * rounds and set(statuses) == {"Success", "DuplicateRecord"}
    assert opened == threads  # a 4-connection pool: 12, then 8 new ones every round
    assert not [r for r in caplog.records if "pool is full" in r.getMessage()]


def test_given_quotas_on_when_a_burst_of_calls_is_made_then_pacing_keeps_the_service_from_throttling(
        metering_emulator: EmulatorServer) -> None:
    records = [a_record(customer=c, dimension=d, timestamp=hour_start(-h))
               for c in ("cust-demo-0001", "cust-demo-0002") for d in ("users", "api_calls", "storage_gb")
               for h in range(6)] * 9
    out = run_action("batchMeterUsage", {"ProductCode": PRODUCT, "UsageRecords": records},
                     a_config(metering_emulator.url))["body"]
    stats = metering_emulator.admin.stats()["operations"]["BatchMeterUsage"]
    assert stats["calls"] == 13 and stats["throttled"] == 0
    assert out["StatusCounts"]["Success"] == len(records)


def test_given_the_same_meter_usage_message_twice_when_redelivered_then_it_is_billed_once(
        metering_emulator: EmulatorServer) -> None:
    body = {"ProductCode": PRODUCT, "Timestamp": hour_start(), "UsageDimension": "api_calls", "UsageQuantity": 9}
    first = run_action("meterUsage", body, a_config(metering_emulator.url), msg_id="msg-1")["body"]
    second = run_action("meterUsage", body, a_config(metering_emulator.url), msg_id="msg-1")["body"]
    assert first["MeteringRecordId"] == second["MeteringRecordId"]
    assert first["ClientToken"] == second["ClientToken"]
    records = metering_emulator.admin.records()["records"]
    assert len(records) == 1 and records[0]["submissions"] == 1 and records[0]["quantity"] == 9


def test_given_an_empty_client_token_mapped_then_it_counts_as_none_and_one_is_derived(
        metering_emulator: EmulatorServer) -> None:
    """The field says "leave empty"; a mapping that yields "" is the same as leaving it out."""
    body = {"ProductCode": PRODUCT, "Timestamp": hour_start(), "UsageDimension": "api_calls", "UsageQuantity": 9}
    given_empty = run_action("meterUsage", {**body, "ClientToken": ""}, a_config(metering_emulator.url),
                             msg_id="msg-empty")["body"]
    left_out = run_action("meterUsage", body, a_config(metering_emulator.url), msg_id="msg-empty")["body"]
    assert given_empty["ClientToken"] and given_empty["ClientToken"] == left_out["ClientToken"]
    assert given_empty["MeteringRecordId"] == left_out["MeteringRecordId"]
    assert len(metering_emulator.admin.records()["records"]) == 1


def test_given_a_reply_lost_to_a_read_timeout_when_retried_then_the_client_token_prevents_double_billing(
        metering_emulator: EmulatorServer) -> None:
    metering_emulator.admin.add_fault(type="latency", latency_ms=800, count=1, operations=["MeterUsage"])
    cfg = a_config(metering_emulator.url)
    client = MeteringClient(Settings.from_cfg(cfg), timeout=(2.0, 0.3), backoff=Backoff(base=0.6, cap=0.6,
                            rand=lambda: 1.0))
    body = {"ProductCode": PRODUCT, "Timestamp": hour_start(), "UsageDimension": "users", "UsageQuantity": 2}
    out = run_action("meterUsage", body, cfg, msg_id="msg-timeout", client=client)["body"]
    records = metering_emulator.admin.records()["records"]
    assert [r["meteringRecordId"] for r in records] == [out["MeteringRecordId"]]
    assert metering_emulator.admin.stats()["operations"]["MeterUsage"]["calls"] == 2


def test_given_different_messages_then_their_derived_client_tokens_differ() -> None:
    from lib.runner import derive_client_token

    a = derive_client_token({"id": "m-1"}, None, {"x": 1})
    assert a == derive_client_token({"id": "m-1"}, "other", {"x": 1})  # the payload's id wins
    assert a != derive_client_token({"id": "m-2"}, None, {"x": 1})
    assert a != derive_client_token({"id": "m-1"}, None, {"x": 2})  # same message, another request
    assert derive_client_token({}, "amqp-id", {"y": 2}) == derive_client_token({}, "amqp-id", {"y": 2})
    assert derive_client_token({}, None, {"y": 2}) == derive_client_token({}, None, {"y": 2})
    assert len(a) <= 64


def test_given_one_message_fanned_out_to_two_meter_usage_steps_then_both_are_billed_without_conflict(
        metering_emulator: EmulatorServer) -> None:
    cfg = a_config(metering_emulator.url)
    common = {"ProductCode": PRODUCT, "Timestamp": hour_start()}
    users = run_action("meterUsage", {**common, "UsageDimension": "users", "UsageQuantity": 3}, cfg,
                       msg_id="fan-out-1")["body"]
    calls = run_action("meterUsage", {**common, "UsageDimension": "api_calls", "UsageQuantity": 7}, cfg,
                       msg_id="fan-out-1")["body"]
    again = run_action("meterUsage", {**common, "UsageDimension": "users", "UsageQuantity": 3}, cfg,
                       msg_id="fan-out-1")["body"]  # the first branch's message redelivered
    assert users["ClientToken"] != calls["ClientToken"]
    assert again["MeteringRecordId"] == users["MeteringRecordId"]
    billed = sorted((r["dimension"], r["quantity"]) for r in metering_emulator.admin.records()["records"])
    assert billed == [("api_calls", 7), ("users", 3)]


def test_given_many_rotating_credentials_then_clients_are_reused_and_bounded() -> None:
    from lib import client as client_module

    first = client_module.client_for(Settings.from_cfg(a_config("http://127.0.0.1:9", sessionToken="token-0000")))
    assert client_module.client_for(Settings.from_cfg(a_config("http://127.0.0.1:9", sessionToken="token-0000"))) \
        is first
    for n in range(40):
        client_module.client_for(Settings.from_cfg(a_config("http://127.0.0.1:9", sessionToken=f"token-{n:04d}x")))
    assert len(client_module._CLIENTS) <= 16
    assert all(c is not first for c in client_module._CLIENTS.values())


def test_given_quotas_on_when_register_usage_is_called_in_a_burst_then_it_is_paced_at_5_per_second(
        metering_emulator: EmulatorServer) -> None:
    for _ in range(7):
        run_action("registerUsage", {"ProductCode": PRODUCT, "PublicKeyVersion": 1}, a_config(metering_emulator.url))
    stats = metering_emulator.admin.stats()["operations"]["RegisterUsage"]
    assert stats["calls"] == 7 and stats["throttled"] == 0


def test_given_no_calls_per_second_then_each_operation_is_paced_to_its_documented_quota() -> None:
    client = MeteringClient(Settings.from_cfg(a_config("http://127.0.0.1:9")))
    rates = {op.name: client.rate_for(op) for op in OPERATIONS.values()}
    assert rates == {"BatchMeterUsage": 10, "MeterUsage": 10, "RegisterUsage": 5, "ResolveCustomer": 10}


def test_given_a_raised_calls_per_second_then_every_operation_is_paced_to_it() -> None:
    client = MeteringClient(Settings.from_cfg(a_config("http://127.0.0.1:9", callsPerSecond="40")))
    assert {client.rate_for(op) for op in OPERATIONS.values()} == {40.0}
    lowered = MeteringClient(Settings.from_cfg(a_config("http://127.0.0.1:9", callsPerSecond="2.5")))
    assert lowered.rate_for(OPERATIONS["registerUsage"]) == 2.5


@pytest.mark.parametrize("value", ["0", "0.0", "-3", "ten", "1e3", "12345"])
def test_given_an_unusable_calls_per_second_then_the_configuration_is_rejected_by_path(value: str) -> None:
    from lib.errors import MeteringError

    with pytest.raises(MeteringError) as caught:
        Settings.from_cfg(a_config("http://127.0.0.1:9", callsPerSecond=value))
    assert [p.path for p in caught.value.problems] == ["/callsPerSecond"]
    assert f"'{value}'" not in str(caught.value) and f'"{value}"' not in str(caught.value)  # never echoed


def test_given_rate_calls_in_flight_when_another_call_asks_then_it_waits_for_the_oldest_to_complete() -> None:
    import threading

    clock = FakeClock()
    pacer = Pacer(2, clock=clock, sleep=clock.sleep, slack=0.0)
    first, second = pacer.wait(), pacer.wait()  # two concurrent calls, neither answered yet
    started = threading.Event()
    marks: list[list[float]] = []
    def take_third() -> None:
        marks.append(pacer.wait())
        started.set()

    third = threading.Thread(target=take_third, daemon=True)
    third.start()
    assert not started.wait(0.3), "a third call started while both earlier calls were still in flight"
    clock.now += 2.0  # the first call's reply arrives two seconds after it started
    pacer.done(first)
    assert started.wait(5), "the third call never started after the oldest call completed"
    third.join(5)
    assert marks[0][0] >= 100.0 + 2.0 + 1.0  # a second after the first call *completed*, not started
    pacer.done(second)
    pacer.done(marks[0])


# -- adaptive pacing ---------------------------------------------------------------------------------------

def _calls(pacer: AdaptivePacer, clock: FakeClock, n: int, throttled: bool = False,
           latency: float = 0.02) -> list[float]:
    """``n`` calls one after the other through ``pacer``; returns their start times."""
    starts = []
    for _ in range(n):
        mark = pacer.wait()
        starts.append(clock.now)
        clock.now += latency
        pacer.done(mark, throttled=throttled)
    return starts


def _window(starts_ends: list[tuple[float, float]], at: float) -> int:
    """Calls a server counting each call at its end would count in the second ending at ``at``."""
    return sum(1 for _, end in starts_ends if at - 1.0 < end <= at)


def test_given_throttling_answers_then_the_window_drops_to_the_share_that_got_through_once_per_round() -> None:
    clock = FakeClock()
    pacer = AdaptivePacer(10, clock=clock, sleep=clock.sleep)
    assert pacer.control.limit == 10 and pacer.rate == 10  # a fresh pacer starts at the ceiling
    _calls(pacer, clock, 30)  # 10 calls got through in the last second: the whole window was ours
    _calls(pacer, clock, 1, throttled=True)
    # another process wants a share: down by 30 % of the window (a newcomer's probes take the room)
    assert pacer.control.limit == 7 and pacer.rate == 7.0
    assert pacer.control.decreases == 1 and pacer.throttled == 1
    mark = pacer.wait()  # a call of the same round (within the hold) throttled too: no second decrease
    clock.now += 0.02
    pacer.done(mark, throttled=True)
    assert pacer.control.limit == 7 and pacer.control.decreases == 1 and pacer.throttled == 2
    # Another process takes half of the account's quota: only 5 of ours got through in the last second.
    clock.now += 2.0
    for _ in range(5):
        _calls(pacer, clock, 1)
        clock.now += 0.13
    _calls(pacer, clock, 1, throttled=True)
    assert pacer.control.limit == 5 and pacer.rate == 5.0  # halved: to the share that got through
    assert pacer.control.decreases == 2


def test_given_a_window_then_no_rolling_second_holds_more_calls_of_the_process_than_the_window() -> None:
    """Each call starts a second after the one ``limit`` calls earlier ended, and starts are 1/limit apart."""
    clock = FakeClock()
    pacer = AdaptivePacer(10, clock=clock, sleep=clock.sleep)
    _calls(pacer, clock, 12)
    _calls(pacer, clock, 1, throttled=True)
    clock.now += 0.5
    for _ in range(6):
        _calls(pacer, clock, 1, throttled=True)
        clock.now += 1.1  # each in a later round: down again every time, to what got through
    assert pacer.control.limit == 1
    spans = []
    for latency in [0.01, 0.3, 0.05, 0.02] * 5:
        mark = pacer.wait()
        start = clock.now
        clock.now += latency
        pacer.done(mark)
        spans.append((start, clock.now))
        limit = pacer.control.limit
        assert _window(spans, clock.now) <= limit
    for (_, end), (start, _) in zip(spans, spans[1:], strict=False):  # window 1 for a while: one a second
        if pacer.control.limit == 1:
            assert start >= end + 1.0


def test_given_no_more_throttling_then_the_window_grows_back_to_the_ceiling_and_never_above() -> None:
    clock = FakeClock()
    pacer = AdaptivePacer(10, clock=clock, sleep=clock.sleep, rand=lambda: 0.5)  # jitter x1.0
    _calls(pacer, clock, 30)
    clock.now += 1.3
    _calls(pacer, clock, 3)
    _calls(pacer, clock, 1, throttled=True)  # 3 of ours in the last second: the share is 3
    assert pacer.control.limit == 3
    limits, changes = [], [(pacer.control.changed_at, 3)]
    for _ in range(400):  # 40 s of calls that all get through
        _calls(pacer, clock, 1)
        if pacer.control.limit != changes[-1][1]:
            changes.append((clock.now, pacer.control.limit))
        limits.append(pacer.control.limit)
        assert pacer.control.limit <= 10 and pacer.rate <= 10
    assert limits == sorted(limits), "the window grows monotonically without throttling"
    # the first probe after the window's quiet wait (probe * limit / ceiling: 6 s at 3); a probe that held
    # is re-tested 1.5 s later (retest x jitter, at least the probe's grace); after two probes that held,
    # every quiet second, twice the last step (capped at the ceiling)
    assert [w for _, w in changes] == [3, 4, 5, 7, 10]
    gaps = [b - a for (a, _), (b, _) in pairwise(changes)]
    assert 6.0 - 1e-9 <= gaps[0] < 6.5 and 1.5 - 1e-9 <= gaps[1] < 2.0
    assert all(1.0 - 1e-9 <= g < 1.5 for g in gaps[2:])
    starts = _calls(pacer, clock, 60)
    for first in starts:  # at the ceiling, never more than 10 starts in any one-second window
        assert len([s for s in starts if first <= s < first + 1.0]) <= 10


def test_given_a_small_window_then_it_probes_sooner_than_a_large_one() -> None:
    clock = FakeClock()
    small, large = AdaptiveWindow(10, clock=clock), AdaptiveWindow(10, clock=clock)
    small.limit, large.limit = 2, 8
    assert small.probe_after() == pytest.approx(4.0) and large.probe_after() == pytest.approx(16.0)
    assert AdaptiveWindow(10, clock=clock, probe=2.0).probe_after() >= 1.0  # min_probe


def test_given_a_probe_that_is_throttled_then_the_next_probe_waits_twice_as_long() -> None:
    clock = FakeClock()
    pacer = AdaptivePacer(10, clock=clock, sleep=clock.sleep, rand=lambda: 0.5)
    _calls(pacer, clock, 30)
    clock.now += 1.3
    _calls(pacer, clock, 4)
    _calls(pacer, clock, 1, throttled=True)
    assert pacer.control.limit == 4 and pacer.control.probe_after() == pytest.approx(8.0)
    for _ in range(200):
        _calls(pacer, clock, 1)
        if pacer.control.limit == 5:
            break
    assert pacer.control.limit == 5  # the probe
    _calls(pacer, clock, 1, throttled=True)  # ... throttled at once: the account is full
    assert pacer.control.limit == 4  # undone: back to the window that held
    assert pacer.control.probe_after() == pytest.approx(16.0)  # and the next probe waits twice as long


def test_given_a_decrease_after_a_failed_probe_then_the_doubled_wait_is_void_and_the_old_probe_never_counts_as_held(
) -> None:
    """A failed probe doubles the wait from the window it started from; once another process's growth lowers
    this window by a unit (a throttle outside a probe's grace: a knock), the doubled wait is void: the next
    probe reclaims the unit after ``reclaim`` seconds, and it is not a probe of a run: the probe after it waits
    the full wait (no doubling steps counted from the failed probe or the reclaim)."""
    clock = FakeClock()
    pacer = AdaptivePacer(10, clock=clock, sleep=clock.sleep, rand=lambda: 0.5)  # jitter x1.0
    _calls(pacer, clock, 30)
    clock.now += 1.3
    _calls(pacer, clock, 4)
    _calls(pacer, clock, 1, throttled=True)
    assert pacer.control.limit == 4
    for _ in range(200):
        _calls(pacer, clock, 1)
        if pacer.control.limit == 5:
            break
    _calls(pacer, clock, 1, throttled=True)  # the probe failed: back to 4, the next probe waits 16 s
    assert pacer.control.limit == 4 and pacer.control.probe_after() == pytest.approx(16.0)
    clock.now += 1.1
    _calls(pacer, clock, 8)
    _calls(pacer, clock, 1, throttled=True)  # another process grew: this one drops, outside any probe
    assert pacer.control.limit == 3
    assert pacer.control.probe_after() == pytest.approx(6.0)  # the window of 3's own wait, not doubled
    changes = [(pacer.control.changed_at, 3)]
    for _ in range(300):
        _calls(pacer, clock, 1)
        if pacer.control.limit != changes[-1][1]:
            changes.append((clock.now, pacer.control.limit))
        if len(changes) == 3:
            break
    assert [w for _, w in changes] == [3, 4, 5]  # one unit at a time: the failed probe did not hold
    assert changes[1][0] - changes[0][0] == pytest.approx(3.0, abs=0.2)  # the reclaim (3 s x jitter 1.0)
    assert changes[2][0] - changes[1][0] >= 8.0 - 1e-9  # the next probe waits the full wait of 4 again


def _to_window(pacer: AdaptivePacer, clock: FakeClock, window: int) -> None:
    """Drive a fresh pacer to ``window``: ``window`` calls got through in the last second, then a throttle."""
    _calls(pacer, clock, 30)
    clock.now += 1.3
    _calls(pacer, clock, window)
    _calls(pacer, clock, 1, throttled=True)
    assert pacer.control.limit == window


def _until_window(pacer: AdaptivePacer, clock: FakeClock, window: int, limit: int = 400) -> float:
    """Calls that all get through until the window is ``window``; returns the time it changed."""
    for _ in range(limit):
        _calls(pacer, clock, 1)
        if pacer.control.limit == window:
            return pacer.control.changed_at
    raise AssertionError(f"the window never reached {window} (at {pacer.control.limit})")


def _knocked(pacer: AdaptivePacer, clock: FakeClock) -> float:
    """Drive a fresh pacer to a window of 5 in use, then a throttle outside any probe (another process's
    probe took a unit: a knock): the window is 4 (30 % of 5, rounded down, is less than a unit). Returns
    the time of that decrease."""
    _to_window(pacer, clock, 5)
    clock.now += 1.6
    _calls(pacer, clock, 6)
    _calls(pacer, clock, 1, throttled=True)
    assert pacer.control.limit == 4
    return pacer.control.changed_at


def test_given_a_probe_that_held_when_the_next_probe_of_its_run_fails_then_the_run_is_given_back_once(
) -> None:
    """A probe that held may have taken a unit from another process (a knock). When the re-test fails the
    account is full: the window goes back to where the run of probes started, so the other process can
    reclaim its unit. Once per level: the very next run that fails at the same window keeps what held (the
    room was free); a later run that fails gives back again."""
    clock = FakeClock()
    pacer = AdaptivePacer(10, clock=clock, sleep=clock.sleep, rand=lambda: 0.5)  # jitter x1.0
    _to_window(pacer, clock, 4)
    probed = _until_window(pacer, clock, 5)  # the probe, after the window's wait (8 s at 4)
    retested = _until_window(pacer, clock, 6)  # it held: re-tested 1.5 s later
    assert 1.5 - 1e-9 <= retested - probed < 1.8  # (the first call that completes after 1.5 s)
    _calls(pacer, clock, 1, throttled=True)  # the re-test is throttled: the account is full
    assert pacer.control.limit == 4  # the run's gain given back, not only the re-test's
    assert pacer.control.probe_after() == pytest.approx(16.0)  # a failed probe: the next waits twice as long
    _until_window(pacer, clock, 5)
    _until_window(pacer, clock, 6)
    _calls(pacer, clock, 1, throttled=True)  # the same level fails again: the room at 5 was free
    assert pacer.control.limit == 5
    clock.now += 1.6
    _calls(pacer, clock, 3)
    _calls(pacer, clock, 1, throttled=True)  # a decrease outside any probe (to the share), then a new run
    assert pacer.control.limit == 3
    _until_window(pacer, clock, 4)
    _until_window(pacer, clock, 5)
    _calls(pacer, clock, 1, throttled=True)
    assert pacer.control.limit == 3  # given back again


def test_given_a_knock_then_the_unit_is_reclaimed_soon_without_doubling_and_given_up_after_three_failures(
) -> None:
    """Another process's probe took one unit (a throttle outside this process's probe): this process probes
    back to its old window after ``reclaim`` (3 s) x jitter, without doubling the wait when that fails; after
    three failed reclaims it waits its window's own probe wait (the unit was not coming back)."""
    clock = FakeClock()
    pacer = AdaptivePacer(10, clock=clock, sleep=clock.sleep, rand=lambda: 0.5)  # jitter x1.0
    knocked = _knocked(pacer, clock)
    assert _until_window(pacer, clock, 5) - knocked == pytest.approx(3.0, abs=0.15)  # the reclaim
    _calls(pacer, clock, 1, throttled=True)  # the unit is still taken
    assert pacer.control.limit == 4 and pacer.control.probe_after() == pytest.approx(8.0)  # not doubled
    for _ in range(2):
        failed = pacer.control.changed_at
        assert _until_window(pacer, clock, 5) - failed == pytest.approx(3.0, abs=0.15)  # again, as soon
        _calls(pacer, clock, 1, throttled=True)
    assert pacer.control.limit == 4  # three failed reclaims: given up
    given_up = pacer.control.changed_at
    assert _until_window(pacer, clock, 5) - given_up >= 8.0 - 1e-9  # an ordinary probe, after 8 s at 4


def test_given_a_reclaim_that_holds_then_the_window_is_back_and_the_next_probe_waits_the_full_wait() -> None:
    clock = FakeClock()
    pacer = AdaptivePacer(10, clock=clock, sleep=clock.sleep, rand=lambda: 0.5)
    _knocked(pacer, clock)
    reclaimed = _until_window(pacer, clock, 5)
    grown = _until_window(pacer, clock, 6)
    assert grown - reclaimed >= 1.5 + 10.0 - 1e-9  # the reclaim's grace, then 10 s at 5: not a run's re-test


def test_given_a_slot_to_reuse_then_the_pacer_waits_a_random_gap_after_the_second_so_others_get_a_chance(
) -> None:
    clock = FakeClock()
    draws = iter([0.0, 0.5, 0.99])
    pacer = Pacer(2, clock=clock, sleep=clock.sleep, slack=0.0, gap=0.02, rand=lambda: next(draws))
    ends = []
    for _ in range(5):
        mark = pacer.wait()
        clock.now += 0.3
        pacer.done(mark)
        ends.append(clock.now)
        if len(ends) >= 3:  # each reuses the slot of the call two before: a second after it ended, plus the gap
            start = ends[-1] - 0.3
            assert start == pytest.approx(ends[-3] + 1.0 + [0.0, 0.01, 0.0198][len(ends) - 3])
    assert AdaptivePacer(10).gap == 0.02 and Pacer(10).gap == 0.0  # adaptive pacers leave the gap


class _HookedCondition(threading.Condition):
    """A condition whose first ``wait_for`` runs ``hook`` (what another thread does meanwhile) in line."""

    def __init__(self, hook: Callable[[], None]) -> None:
        super().__init__()
        self._hook: Callable[[], None] | None = hook

    def wait_for(self, predicate: Callable[[], _T], timeout: float | None = None) -> _T:
        hook, self._hook = self._hook, None
        if hook is not None:
            hook()
        return predicate()


def test_given_a_call_waiting_for_a_call_in_flight_when_the_window_shrinks_then_it_keeps_the_slot_it_gets() -> None:
    """A call that waits for the oldest call in flight to complete gets its slot after that, under the window
    of that moment: a decrease while it waited does not cost it that slot (only a decrease while it sleeps
    until its slot makes it queue again)."""
    clock = FakeClock()
    pacer = AdaptivePacer(10, clock=clock, sleep=clock.sleep, slack=0.0, rand=lambda: 0.5)
    _calls(pacer, clock, 30)
    clock.now += 1.3
    _calls(pacer, clock, 3)
    _calls(pacer, clock, 1, throttled=True)
    assert pacer.control.limit == 3
    clock.now += 1.1  # past the hold: a later throttle lowers the window again
    first, second, third = pacer.wait(), pacer.wait(), pacer.wait()  # three calls in flight: the window is full
    given: list[float] = []

    def meanwhile() -> None:  # while a fourth call waits: the first is throttled, the second completes
        clock.now += 0.02
        pacer.done(first, throttled=True)
        clock.now += 0.01
        pacer.done(second)
        given.append(clock.now)

    pacer._lock = _HookedCondition(meanwhile)
    sleeps = len(clock.sleeps)
    fourth = pacer.wait()
    assert given and pacer.control.decreases == 2 and pacer.control.limit < 3  # it waited across a decrease
    assert len(clock.sleeps) == sleeps + 1  # and slept once, to the slot it was given: not sent to queue again
    assert fourth[2] <= given[0] + 1.0  # that slot: within a second (the window of 1) of when it was given
    pacer.done(third)
    pacer.done(fourth)


def test_given_processes_that_started_together_then_their_probes_are_spread_by_a_jitter() -> None:
    clock = FakeClock()
    early = AdaptivePacer(10, clock=clock, sleep=clock.sleep, rand=lambda: 0.0)
    late = AdaptivePacer(10, clock=clock, sleep=clock.sleep, rand=lambda: 0.99)
    grown: dict[str, float] = {}
    for name, pacer in (("early", early), ("late", late)):
        start = clock.now
        _calls(pacer, clock, 30)
        clock.now += 1.3
        _calls(pacer, clock, 4)
        _calls(pacer, clock, 1, throttled=True)  # window 4: probe_after 8 s, times the jitter drawn now
        decreased = pacer.control.changed_at
        for _ in range(300):
            _calls(pacer, clock, 1)
            if pacer.control.limit == 5:
                grown[name] = clock.now - decreased
                break
        clock.now = start + 100.0
    assert 4.0 - 1e-9 <= grown["early"] < 4.5  # 8 s x 0.5
    assert 11.9 <= grown["late"] < 12.5  # 8 s x 1.49


def test_given_an_idle_process_then_its_window_does_not_grow() -> None:
    """Only a window in use grows (RFC 7661): one call every few seconds learns nothing about capacity."""
    clock = FakeClock()
    pacer = AdaptivePacer(10, clock=clock, sleep=clock.sleep)
    _calls(pacer, clock, 30)
    clock.now += 1.3
    _calls(pacer, clock, 3)
    _calls(pacer, clock, 1, throttled=True)
    assert pacer.control.limit == 3
    for _ in range(30):
        clock.now += 2.0
        _calls(pacer, clock, 1)
    assert pacer.control.limit == 3


def test_given_a_throttled_call_then_its_slot_is_given_back_for_the_retry() -> None:
    """The service did not count it: the retry does not wait a second after it."""
    clock = FakeClock()
    pacer = AdaptivePacer(2, clock=clock, sleep=clock.sleep, slack=0.0)
    _calls(pacer, clock, 2)  # two calls: the window of 2 is used
    clock.now += 1.5
    first = _calls(pacer, clock, 1)[0]
    mark = pacer.wait()
    clock.now += 0.01
    pacer.done(mark, throttled=True)
    assert pacer.control.limit == 1  # one got through in the last second
    before = clock.now
    pacer.done(pacer.wait())
    assert clock.now - before <= 1.0  # waits for the one call that counted (``first``), not for the throttled one
    assert clock.now >= first + 1.0


def test_given_calls_per_second_as_the_ceiling_then_the_adaptive_rate_never_exceeds_it() -> None:
    clock = FakeClock()
    pacer = AdaptivePacer(2.5, clock=clock, sleep=clock.sleep)
    starts = _calls(pacer, clock, 40)
    assert pacer.rate == 2.5 and pacer.control.limit == 2
    for first in starts:
        assert len([s for s in starts if first <= s < first + 1.0]) <= 2
    for _ in range(5):  # throttled and recovered, several times: never above the ceiling
        _calls(pacer, clock, 1, throttled=True)
        clock.now += 1.1
        for _ in range(40):
            _calls(pacer, clock, 1)
            assert pacer.rate <= 2.5 and pacer.control.limit <= 2


def test_given_a_fresh_pacer_then_one_process_alone_is_at_the_ceiling_at_once() -> None:
    clock = FakeClock()
    pacer = AdaptivePacer(10, clock=clock, sleep=clock.sleep)
    starts = _calls(pacer, clock, 20)
    assert pacer.rate == 10 and starts[9] - starts[0] == pytest.approx(0.9)  # no ramp: 10 calls in 0.9 s
    assert pacer.throttled == 0


def test_given_one_process_then_all_its_threads_share_one_adaptive_pacer_per_quota() -> None:
    import threading

    from lib import resilience

    a = resilience.shared_pacer("AKIA-SHARED-TEST", "us-east-1", "BatchMeterUsage", 10)
    seen: list[AdaptivePacer] = []
    threads = [threading.Thread(target=lambda: seen.append(
        resilience.shared_pacer("AKIA-SHARED-TEST", "us-east-1", "BatchMeterUsage", 10))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert len(seen) == 8 and all(p is a for p in seen)
    assert resilience.shared_pacer("AKIA-SHARED-TEST", "us-east-1", "RegisterUsage", 5) is not a
    assert resilience.shared_pacer("AKIA-SHARED-TEST", "eu-west-1", "BatchMeterUsage", 10) is not a
    # a throttle seen by one thread slows every thread of the process
    clock = FakeClock()
    shared = AdaptivePacer(10, clock=clock, sleep=clock.sleep)
    _calls(shared, clock, 30)
    mark = shared.wait()
    clock.now += 0.02
    worker = threading.Thread(target=lambda: shared.done(mark, throttled=True))
    worker.start()
    worker.join(5)
    assert shared.rate < 10
    assert shared.control.limit == 7
    before = clock.now
    starts = _calls(shared, clock, 2, latency=0.0)
    assert clock.now - before >= 1.0 / shared.rate - 1e-9  # the other threads' next call waits longer
    starts += _calls(shared, clock, 30, latency=0.0)
    for first in starts:  # the process keeps to the window that one thread's throttle set
        assert len([s for s in starts if first <= s < first + 1.0]) <= 7


def test_given_quotas_on_when_the_client_is_throttled_then_it_retries_and_the_shared_pacer_slows_down(
        metering_emulator: EmulatorServer) -> None:
    metering_emulator.admin.add_fault(type="throttle", count=1, operations=["BatchMeterUsage"])
    clock = FakeClock()
    pacer = AdaptivePacer(10, clock=clock, sleep=clock.sleep)
    client = MeteringClient(Settings.from_cfg(a_config(metering_emulator.url)), pacer_for=lambda op: pacer,
                            backoff=Backoff(base=0.01, cap=0.02), sleep=lambda s: None)
    reply = client.call(OPERATIONS["batchMeterUsage"], {"ProductCode": PRODUCT, "UsageRecords": [a_record()]})
    assert reply.attempts == 2
    assert pacer.throttled == 1 and pacer.control.decreases == 1 and pacer.rate < 10
