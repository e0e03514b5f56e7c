"""Retries with capped full-jitter backoff, client-side pacing, and idempotent redelivery."""

from __future__ import annotations

from itertools import pairwise

import pytest
from metering_emulator.testing import EmulatorServer

from lib.client import MeteringClient, Settings
from lib.operations import OPERATIONS
from lib.resilience import AdaptivePacer, Backoff, Pacer
from spec.connector.builders import PRODUCT, a_config, a_record, hour_start, run_action


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


def test_given_throttling_answers_then_the_adaptive_rate_drops_by_its_factor_once_per_round() -> None:
    clock = FakeClock()
    pacer = AdaptivePacer(10, clock=clock, sleep=clock.sleep, beta=0.5)
    _calls(pacer, clock, 30)  # climbed to the ceiling, 10 calls got through in the last second
    assert pacer.rate == 10
    _calls(pacer, clock, 1, throttled=True)
    assert pacer.control.w_max in (9.0, 10.0)  # the share: the calls that got through in the last second
    assert pacer.rate == pytest.approx(0.5 * pacer.control.w_max)  # halved (beta 0.5)
    assert pacer.rate <= 5.0
    rate = pacer.rate
    before = clock.now
    mark = pacer.wait()  # a call of the same round (within the hold) throttled too: no second decrease
    assert clock.now - before >= 1 / rate - 1e-9  # spaced at the new rate
    clock.now += 0.02
    pacer.done(mark, throttled=True)
    assert pacer.rate == rate
    clock.now += 1.0  # a later round still throttled: down again, from the share that got through
    _calls(pacer, clock, 1, throttled=True)
    assert pacer.rate < rate and pacer.control.decreases == 2


def test_given_no_more_throttling_then_the_rate_climbs_back_to_the_ceiling_and_never_above() -> None:
    clock = FakeClock()
    pacer = AdaptivePacer(10, clock=clock, sleep=clock.sleep)
    _calls(pacer, clock, 30)
    _calls(pacer, clock, 1, throttled=True)
    low = pacer.rate
    assert low < 10
    rates = []
    for _ in range(40):  # 40 seconds of calls that all get through
        _calls(pacer, clock, 5)
        rates.append(pacer.rate)
        clock.now += 0.5
    assert rates[0] > low and rates == sorted(rates), "the rate rises monotonically without throttling"
    assert rates[-1] == 10 and max(rates) <= 10
    starts = _calls(pacer, clock, 60)
    for first in starts:  # at the ceiling, never more than 10 starts in any one-second window
        assert len([s for s in starts if first <= s < first + 1.0]) <= 10


def test_given_calls_per_second_as_the_ceiling_then_the_adaptive_rate_never_exceeds_it() -> None:
    clock = FakeClock()
    pacer = AdaptivePacer(2.5, clock=clock, sleep=clock.sleep)
    starts = _calls(pacer, clock, 40)
    assert pacer.rate == 2.5
    for first in starts:
        assert len([s for s in starts if first <= s < first + 1.0]) <= 2


def test_given_a_fresh_pacer_then_it_starts_below_the_ceiling_and_reaches_it_within_seconds() -> None:
    clock = FakeClock()
    pacer = AdaptivePacer(10, clock=clock, sleep=clock.sleep)
    assert pacer.rate == pytest.approx(8.0)  # beta * ceiling: new processes do not burst into a busy account
    _calls(pacer, clock, 20)
    assert pacer.rate == 10 and clock.now - 100.0 < 3.0


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
    before = clock.now
    _calls(shared, clock, 2, latency=0.0)
    assert clock.now - before >= 1.0 / shared.rate - 1e-9  # the other threads' next call waits longer


def test_given_quotas_on_when_the_client_is_throttled_then_it_retries_and_the_shared_pacer_slows_down(
        metering_emulator: EmulatorServer) -> None:
    metering_emulator.admin.add_fault(type="throttle", count=1, operations=["BatchMeterUsage"])
    clock = FakeClock()
    pacer = AdaptivePacer(10, clock=clock, sleep=clock.sleep)
    client = MeteringClient(Settings.from_cfg(a_config(metering_emulator.url)), pacer_for=lambda op: pacer,
                            backoff=Backoff(base=0.01, cap=0.02), sleep=lambda s: None)
    reply = client.call(OPERATIONS["batchMeterUsage"], {"ProductCode": PRODUCT, "UsageRecords": [a_record()]})
    assert reply.attempts == 2
    assert pacer.throttled == 1 and pacer.control.decreases == 1 and pacer.rate < 8.0
