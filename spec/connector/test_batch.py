"""Batch Meter Usage with any number of records: chunks, resubmission, window, redelivery."""

from __future__ import annotations

import calendar
import copy
import json
import logging
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from metering_emulator.testing import DEFAULT_FIXTURES, EmulatorServer

from lib.batch import BatchFailure, RecordResult, chunk, run_batch, window_bounds
from lib.client import MeteringClient, Settings
from lib.errors import MeteringError
from lib.operations import OPERATIONS, Operation
from lib.resilience import Backoff, Pacer
from lib.runner import REBOUND_REASON_IDS, batch_summary
from spec.connector.builders import (
    ACCESS_KEY,
    ACCOUNT,
    LICENSE,
    PRODUCT,
    SECRET_KEY,
    SESSION_HOUR,
    StepContext,
    a_config,
    a_record,
    hour_start,
    run_action,
)

BATCH = OPERATIONS["batchMeterUsage"]

DIMENSIONS = ["users", "api_calls", "storage_gb"]


def many_customers(count: int) -> dict[str, Any]:
    fixtures = copy.deepcopy(DEFAULT_FIXTURES)
    fixtures["products"][0]["customers"] = [{"customerIdentifier": f"cust-{i:05d}"} for i in range(count)]
    return fixtures


def distinct_records(count: int) -> list[dict[str, Any]]:
    return [a_record(customer=f"cust-{i // 3:05d}", dimension=DIMENSIONS[i % 3], quantity=i % 7)
            for i in range(count)]


def batch_calls(emu: EmulatorServer) -> int:
    return int(emu.admin.stats()["operations"].get("BatchMeterUsage", {}).get("calls", 0))


@pytest.mark.parametrize(("count", "calls"), [(1, 1), (25, 1), (26, 2), (10_000, 400)])
def test_given_n_records_when_batch_metering_then_they_go_in_calls_of_25_and_each_is_billed_once(
        metering_emulator: EmulatorServer, count: int, calls: int) -> None:
    metering_emulator.admin.load_fixtures(many_customers((count + 2) // 3))
    client = None
    if count > 100:  # the run at the real quota is bench/connector_throughput.py; here pace 100x faster
        metering_emulator.admin.set_config(quotas=False)
        cfg = a_config(metering_emulator.url)
        client = MeteringClient(Settings.from_cfg(cfg), pacer_for=lambda op: Pacer(op.rate_per_second * 100))
    records = distinct_records(count)
    out = run_action("batchMeterUsage", {"ProductCode": PRODUCT, "UsageRecords": records},
                     a_config(metering_emulator.url), client=client)["body"]
    assert batch_calls(metering_emulator) == calls
    assert out["RecordCount"] == count and out["StatusCounts"]["Success"] == count and out["AllSucceeded"]
    assert [r["RecordIndex"] for r in out["Results"]] == list(range(count))
    stored = {(r["customerIdentifier"], r["dimension"]): r for r in metering_emulator.admin.records()["records"]}
    assert len(stored) == count
    for result, record in zip(out["Results"], records, strict=True):
        billed = stored[(record["CustomerIdentifier"], record["Dimension"])]
        assert billed["meteringRecordId"] == result["MeteringRecordId"]
        assert billed["quantity"] == record["Quantity"] and billed["submissions"] == 1


def test_given_unprocessed_records_when_batch_metering_then_they_are_resubmitted_until_processed(
        metering_emulator: EmulatorServer) -> None:
    metering_emulator.admin.load_fixtures(many_customers(4))
    metering_emulator.admin.add_fault(type="unprocessed", count=3, operations=["BatchMeterUsage"])
    out = run_action("batchMeterUsage", {"ProductCode": PRODUCT, "UsageRecords": distinct_records(10)},
                     a_config(metering_emulator.url))["body"]
    assert out["StatusCounts"]["Success"] == 10
    assert batch_calls(metering_emulator) == 2
    assert len(metering_emulator.admin.records()["records"]) == 10


def test_given_records_that_stay_unprocessed_when_resubmissions_run_out_then_the_message_is_rebounded(
        metering_emulator: EmulatorServer) -> None:
    from elasticio_sailor import Rebound

    metering_emulator.admin.set_config(quotas=False)
    metering_emulator.admin.add_fault(type="unprocessed", rate=1.0, operations=["BatchMeterUsage"])
    with pytest.raises(Rebound) as raised:
        run_action("batchMeterUsage", {"ProductCode": PRODUCT, "UsageRecords": [a_record()]},
                   a_config(metering_emulator.url))
    assert isinstance(raised.value.__cause__, MeteringError) and raised.value.__cause__.code == "UnprocessedRecords"
    assert 1 < batch_calls(metering_emulator) <= 7


def test_given_an_old_record_when_skipping_then_it_is_reported_and_the_rest_is_billed(
        metering_emulator: EmulatorServer) -> None:
    records = [a_record(), a_record(customer="cust-demo-0002", timestamp=hour_start(-25)),
               a_record(customer="cust-demo-0002", timestamp=hour_start(+2))]
    out = run_action("batchMeterUsage", {"ProductCode": PRODUCT, "UsageRecords": records},
                     a_config(metering_emulator.url))["body"]
    assert [r["Status"] for r in out["Results"]] == ["Success", "TimestampOutOfBounds", "TimestampOutOfBounds"]
    assert out["StatusCounts"]["TimestampOutOfBounds"] == 2 and out["AllSucceeded"] is False
    assert [r["customerIdentifier"] for r in metering_emulator.admin.records()["records"]] == ["cust-demo-0001"]


def test_given_an_old_record_when_configured_to_fail_then_nothing_is_sent_and_every_bad_path_is_listed(
        metering_emulator: EmulatorServer) -> None:
    records = [a_record(timestamp=hour_start(-26)), a_record(), a_record(timestamp=hour_start(-30))]
    with pytest.raises(MeteringError) as raised:
        run_action("batchMeterUsage", {"ProductCode": PRODUCT, "UsageRecords": records},
                   a_config(metering_emulator.url, outOfWindow="fail"))
    assert [p.path for p in raised.value.problems] == ["/UsageRecords/0/Timestamp", "/UsageRecords/2/Timestamp"]
    assert raised.value.retryable is False
    assert batch_calls(metering_emulator) == 0


def test_given_a_6_hour_window_chosen_when_records_are_12_hours_old_then_they_are_held_back(
        metering_emulator: EmulatorServer) -> None:
    out = run_action("batchMeterUsage", {"ProductCode": PRODUCT, "UsageRecords": [a_record(timestamp=hour_start(-12))]},
                     a_config(metering_emulator.url, timestampWindowHours="6"))["body"]
    assert out["StatusCounts"]["TimestampOutOfBounds"] == 1
    assert batch_calls(metering_emulator) == 0


def test_given_the_same_batch_message_twice_when_redelivered_then_billing_is_unchanged(
        metering_emulator: EmulatorServer) -> None:
    body = {"ProductCode": PRODUCT, "UsageRecords": [a_record(quantity=3), a_record(customer="cust-demo-0002")]}
    first = run_action("batchMeterUsage", body, a_config(metering_emulator.url), msg_id="m-1")["body"]
    again = run_action("batchMeterUsage", body, a_config(metering_emulator.url), msg_id="m-1")["body"]
    assert [r["MeteringRecordId"] for r in first["Results"]] == [r["MeteringRecordId"] for r in again["Results"]]
    assert again["AllSucceeded"]
    summary = metering_emulator.admin.records()["summary"]
    assert sorted((s["customer"], s["count"], s["quantity"]) for s in summary) == [
        ("cust-demo-0001", 1, 3), ("cust-demo-0002", 1, 1)]


def test_given_large_records_when_chunking_then_every_call_stays_under_one_megabyte() -> None:
    tags = [{"Key": f"key-{t}-" + "k" * 90, "Value": "v" * 256} for t in range(5)]
    big = dict(a_record(quantity=400), UsageAllocations=[
        {"AllocatedUsageQuantity": 1, "Tags": [dict(tag, Value=f"{i:04d}" + tag["Value"][4:]) for tag in tags]}
        for i in range(400)])
    records = [big] * 12
    parts = chunk(list(range(12)), records, PRODUCT, 25, 1_000_000)
    sizes = [len(json.dumps({"ProductCode": PRODUCT, "UsageRecords": [records[i] for i in p]},
                            separators=(",", ":")).encode()) for p in parts]
    assert all(size < 1_000_000 for size in sizes)
    assert sum(len(p) for p in parts) == 12 and len(parts) > 1
    assert [i for p in parts for i in p] == list(range(12))


def test_given_a_time_then_the_window_is_exact_and_a_record_exactly_its_hours_old_is_refused() -> None:
    # The model: "Usage records aren't accepted 24 hours or more after an event" (no hour alignment).
    earliest, latest = window_bounds(13.5 * 3600, 6)
    assert earliest == 7.5 * 3600 + 1 and latest == 13.5 * 3600 + 300
    assert window_bounds(1_000_000_000.25, 24)[0] == 1_000_000_000 - 24 * 3600 + 1  # (2001-09-09T01:46:40Z)


@given(st.lists(st.integers(min_value=1, max_value=300_000), max_size=120))
@settings(max_examples=80, deadline=None)
def test_given_any_record_sizes_then_chunks_keep_order_and_both_limits(sizes: list[int]) -> None:
    records = [dict(a_record(), Dimension="d" * size) for size in sizes]
    parts = chunk(list(range(len(records))), records, PRODUCT, 25, 1_000_000)
    assert [i for part in parts for i in part] == list(range(len(records)))
    for part in parts:
        body = {"ProductCode": PRODUCT, "UsageRecords": [records[i] for i in part]}
        assert 1 <= len(part) <= 25
        assert len(json.dumps(body, separators=(",", ":")).encode()) < 1_000_000


def _greedy(records: list[dict[str, Any]], max_items: int, max_bytes: int) -> list[list[int]]:
    """The chunking rule spelled out: add records while the call body stays under max_bytes and max_items.

    (lib/batch.py counts a comma after every record, the last one too: one byte to spare, hence ``+ 1``.)
    """
    def size(part: list[int]) -> int:
        body = {"ProductCode": PRODUCT, "UsageRecords": [records[i] for i in part]}
        return len(json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()) + 1

    parts: list[list[int]] = [[]]
    for index in range(len(records)):
        if size([index]) >= max_bytes:
            raise ValueError("a record alone is too large")
        trial = [*parts[-1], index]
        if len(trial) > max_items or size(trial) >= max_bytes:
            parts.append([index])
        else:
            parts[-1] = trial
    return [part for part in parts if part]


@given(st.lists(st.integers(min_value=1, max_value=2_000), min_size=1, max_size=25), st.integers(-2, 2))
@settings(max_examples=120, deadline=None)
def test_given_one_call_worth_of_records_near_the_size_limit_then_chunking_splits_exactly_at_the_limit(
        sizes: list[int], delta: int) -> None:
    records = [dict(a_record(), Dimension="dé" * size) for size in sizes]
    whole = {"ProductCode": PRODUCT, "UsageRecords": records}
    limit = len(json.dumps(whole, separators=(",", ":"), ensure_ascii=False).encode()) + delta
    try:
        expected = _greedy(records, 25, limit)
    except ValueError:
        with pytest.raises(MeteringError):
            chunk(list(range(len(records))), records, PRODUCT, 25, limit)
        return
    assert chunk(list(range(len(records))), records, PRODUCT, 25, limit) == expected


# --- audit fixes: exactly one report per record, billed quantities, paths, rebounds, exact window ----------


def at(text: str) -> int:
    """Epoch seconds of an ISO UTC time ``YYYY-MM-DDTHH:MM:SSZ``."""
    return calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ"))


def direct_client(url: str, **kwargs: Any) -> MeteringClient:
    return MeteringClient(Settings.create(ACCESS_KEY, SECRET_KEY, endpoint_url=url), **kwargs)


def test_given_a_resubmitted_record_refused_after_the_others_were_answered_then_each_record_is_reported_once(
        metering_emulator: EmulatorServer) -> None:
    # Round 1: record 0 comes back unprocessed, 1 and 2 are billed. The backoff crosses 24 h for records 0
    # and 1, so round 2 ([0]) is refused for its timestamp: only record 0 may be isolated, never 1 again.
    metering_emulator.admin.set_clock(now="2026-12-10T13:59:58Z", frozen=True)
    metering_emulator.admin.add_fault(type="unprocessed", count=1, operations=["BatchMeterUsage"])
    records = [a_record(timestamp=at("2026-12-09T13:59:59Z"), quantity=1),
               a_record(customer="cust-demo-0002", dimension="api_calls", timestamp=at("2026-12-09T14:00:00Z"),
                        quantity=5),
               a_record(customer="cust-demo-0002", timestamp=at("2026-12-10T13:00:00Z"), quantity=2)]

    def backoff(_delay: float) -> None:  # time passes while the connector waits
        metering_emulator.admin.set_clock(now="2026-12-10T14:00:05Z", frozen=True)

    outcome = run_batch(BATCH, direct_client(metering_emulator.url), {"ProductCode": PRODUCT, "UsageRecords": records},
                        now=at("2026-12-10T13:59:58Z"), window_hours=24, out_of_window="skip", sleep=backoff)
    summary = batch_summary(BATCH, outcome)
    assert [(r["RecordIndex"], r["Status"]) for r in summary["Results"]] == [
        (0, "TimestampOutOfBounds"), (1, "Success"), (2, "Success")]
    assert summary["RecordCount"] == 3 and summary["StatusCounts"]["Success"] == 2
    assert summary["Results"][0]["ErrorCode"] == "TimestampOutOfBoundsException"
    stored = metering_emulator.admin.records()["records"]
    assert sorted((r["quantity"], r["submissions"]) for r in stored) == [(2, 1), (5, 1)]
    ids = {r["quantity"]: r["meteringRecordId"] for r in stored}
    assert [summary["Results"][i]["MeteringRecordId"] for i in (1, 2)] == [ids[5], ids[2]]
    assert outcome.calls == 2  # round 1 and the refused round 2: nothing answered was sent again


def test_given_records_aws_did_not_bill_then_no_billed_quantity_is_reported(metering_emulator: EmulatorServer) -> None:
    first = [a_record(quantity=1)]
    run_action("batchMeterUsage", {"ProductCode": PRODUCT, "UsageRecords": first}, a_config(metering_emulator.url))
    records = [a_record(quantity=250), a_record(customer="cust-unknown-9", quantity=40),
               a_record(customer="cust-demo-0002", quantity=7)]
    out = run_action("batchMeterUsage", {"ProductCode": PRODUCT, "UsageRecords": records},
                     a_config(metering_emulator.url))["body"]
    assert [r["Status"] for r in out["Results"]] == ["DuplicateRecord", "CustomerNotSubscribed", "Success"]
    assert [r.get("BilledQuantity") for r in out["Results"]] == [None, None, "7"]


def test_given_a_record_too_large_for_a_call_after_a_skipped_one_then_the_error_names_its_input_path() -> None:
    tags = [{"Key": f"key{j}" + "k" * 90, "Value": "v" * 256} for j in range(5)]
    big = {"Timestamp": SESSION_HOUR, "CustomerAWSAccountId": ACCOUNT, "LicenseArn": LICENSE, "Dimension": "users",
           "QuantityAsDecimal": "2500",
           "UsageAllocations": [{"AllocatedUsageQuantityAsDecimal": "1",
                                 "Tags": [dict(tag, Value=f"{i:06d}" + tag["Value"][6:]) for tag in tags]}
                                for i in range(2500)]}
    small = {key: value for key, value in big.items() if key != "UsageAllocations"}
    records = [dict(small, Timestamp=SESSION_HOUR - 30 * 3600), dict(small, QuantityAsDecimal="1"), big]
    with pytest.raises(MeteringError) as raised:  # no client: nothing may be sent
        run_batch(BATCH, None, {"UsageRecords": records}, now=time.time(),  # type: ignore[arg-type]
                  window_hours=24, out_of_window="skip")
    assert [p.path for p in raised.value.problems] == ["/UsageRecords/2"]


class _FailingAfterFirstCall(MeteringClient):
    """A client whose calls after the first meet an AWS-side outage (the emulator answers 500)."""

    def __init__(self, emu: EmulatorServer) -> None:
        super().__init__(Settings.create(ACCESS_KEY, SECRET_KEY, endpoint_url=emu.url),
                         backoff=Backoff(base=0.001, cap=0.002), sleep=lambda _s: None)
        self.emu, self.count = emu, 0

    def call(self, op: Operation, payload: dict[str, Any]) -> Any:
        self.count += 1
        if self.count == 2:
            self.emu.admin.add_fault(type="error500", rate=1.0, operations=["BatchMeterUsage"])
        return super().call(op, payload)


def test_given_a_retryable_failure_after_partial_billing_then_the_billed_ids_are_logged_and_named_in_the_rebound(
        metering_emulator: EmulatorServer, caplog: pytest.LogCaptureFixture) -> None:
    from elasticio_sailor import Rebound

    metering_emulator.admin.load_fixtures(many_customers(10))
    metering_emulator.admin.set_config(quotas=False)
    ctx = StepContext()
    with caplog.at_level(logging.WARNING), pytest.raises(Rebound) as raised:
        run_action("batchMeterUsage", {"ProductCode": PRODUCT, "UsageRecords": distinct_records(30)},
                   a_config(metering_emulator.url), ctx=ctx, client=_FailingAfterFirstCall(metering_emulator))
    stored = metering_emulator.admin.records()["records"]
    assert len(stored) == 25
    ids = [r["meteringRecordId"] for r in stored]
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name == ctx.logger.name)
    assert all(record_id in logged for record_id in ids)  # every billed record's id reaches the step's log
    assert "#0=" in logged and "(Success)" in logged and "25 record(s) were metered" in logged
    assert SECRET_KEY not in caplog.text
    reason = str(raised.value)
    assert "25 record(s) had been metered" in reason and "billedRecords" not in reason
    assert sum(record_id in reason for record_id in ids) == REBOUND_REASON_IDS and "and 15 more" in reason
    assert len(reason) < 2000
    # every id also rides on the rebound: the sailor's "Rebound limit exceeded" error carries it, should this
    # have been the last rebound allowed (the message never comes back then)
    details = raised.value.error_details["billedRecords"]
    assert sorted(d["MeteringRecordId"] for d in details) == sorted(ids)


class _DeniedAfterFirstCall(MeteringClient):
    """A client whose calls after the first are refused AccessDeniedException (the role lost its permission)."""

    def __init__(self, emu: EmulatorServer, fixtures: dict[str, Any]) -> None:
        super().__init__(Settings.create(ACCESS_KEY, SECRET_KEY, endpoint_url=emu.url))
        self.emu, self.denied = emu, copy.deepcopy(fixtures)
        self.denied["credentials"][0]["deniedOperations"] = ["BatchMeterUsage"]

    def call(self, op: Operation, payload: dict[str, Any]) -> Any:
        reply = super().call(op, payload)
        self.emu.admin.load_fixtures(self.denied)
        return reply


def test_given_a_duplicate_record_before_a_failure_then_only_the_billed_records_are_listed_and_counted(
        metering_emulator: EmulatorServer) -> None:
    """AWS answers a DuplicateRecord with the id of the record it kept (another quantity, the same hour): that
    record was not billed by this message, so billedRecords and the count leave it out."""
    fixtures = many_customers(30)
    fixtures["products"][0]["customers"].append({"customerIdentifier": "cust-demo-0001"})
    metering_emulator.admin.load_fixtures(fixtures)
    earlier = run_action("batchMeterUsage", {"ProductCode": PRODUCT, "UsageRecords": [a_record(quantity=1)]},
                         a_config(metering_emulator.url))["body"]["Results"][0]
    records = [a_record(quantity=2)] + [a_record(customer=f"cust-{i:05d}") for i in range(30)]
    with pytest.raises(MeteringError) as failed:
        run_action("batchMeterUsage", {"ProductCode": PRODUCT, "UsageRecords": records},
                   a_config(metering_emulator.url), client=_DeniedAfterFirstCall(metering_emulator, fixtures))
    err = failed.value
    assert err.code == "AccessDeniedException"
    listed = err.error_details["billedRecords"]
    assert [r["RecordIndex"] for r in listed] == list(range(1, 25))
    assert {r["Status"] for r in listed} == {"Success"}
    assert earlier["MeteringRecordId"] not in {r["MeteringRecordId"] for r in listed}
    assert "24 record(s) had been metered" in str(err)


def test_given_an_unanswered_attempt_before_a_failure_after_billing_then_the_error_still_says_so() -> None:
    """The chunk whose reply was lost may have been billed and is not in billedRecords: the error must say so."""
    cause = MeteringError("AccessDeniedException", "denied", operation="BatchMeterUsage", status=400,
                          request_id="r-2").after_unanswered([1])
    failure = BatchFailure(cause, [RecordResult(0, {}, "Success", "id-0", "r-1")])
    assert failure.error_details["unansweredAttempts"] == [1]
    assert "got no answer" in str(failure) and "1 record(s) had been metered" in str(failure)


def test_given_the_exact_24_hour_window_then_records_are_checked_to_the_second(
        metering_emulator: EmulatorServer) -> None:
    now = "2026-12-10T10:30:00Z"
    metering_emulator.admin.set_clock(now=now, frozen=True)
    records = [a_record(timestamp=at("2026-12-09T10:30:01Z"), quantity=1),  # 24 h - 1 s old: accepted
               a_record(customer="cust-demo-0002", timestamp=at("2026-12-09T10:30:00Z")),  # exactly 24 h: refused
               a_record(dimension="api_calls", timestamp=at("2026-12-09T10:10:00Z"))]  # hour-aligned would send it
    out = run_action("batchMeterUsage", {"ProductCode": PRODUCT, "UsageRecords": records},
                     a_config(metering_emulator.url), now=lambda: float(at(now)))["body"]
    assert [r["Status"] for r in out["Results"]] == ["Success", "TimestampOutOfBounds", "TimestampOutOfBounds"]
    assert "ErrorCode" not in out["Results"][1] and "ErrorCode" not in out["Results"][2]  # held back, not sent
    assert [(r["customerIdentifier"], r["dimension"]) for r in metering_emulator.admin.records()["records"]] == [
        ("cust-demo-0001", "users")]
    assert batch_calls(metering_emulator) == 1



# --- the window checked again before every call (a long message outliving a record's 24 h) --------------


class _Clocks:
    """The connector's clock and AWS's (the emulator's), moved together."""

    def __init__(self, emu: EmulatorServer, now: str) -> None:
        self.emu, self.now = emu, float(at(now))
        emu.admin.set_clock(now=now, frozen=True)

    def move(self, now: str) -> None:
        self.emu.admin.set_clock(now=now, frozen=True)
        self.now = float(at(now))

    def __call__(self) -> float:
        return self.now


class _MovingTimeAfterCall(MeteringClient):
    """A client after whose ``after``-th call both clocks read ``then`` (the call took that long)."""

    def __init__(self, clocks: _Clocks, after: int, then: str) -> None:
        super().__init__(Settings.create(ACCESS_KEY, SECRET_KEY, endpoint_url=clocks.emu.url))
        self.clocks, self.after, self.then = clocks, after, then
        self.payloads: list[dict[str, Any]] = []

    def call(self, op: Operation, payload: dict[str, Any]) -> Any:
        self.payloads.append(copy.deepcopy(payload))
        try:
            return super().call(op, payload)
        finally:
            if len(self.payloads) == self.after:
                self.clocks.move(self.then)


def test_given_a_record_reaching_24_hours_during_the_resubmission_backoff_then_it_is_not_sent_again(
        metering_emulator: EmulatorServer) -> None:
    # Record 0 comes back unprocessed; during the backoff it becomes 24 h old on both clocks. It is reported
    # TimestampOutOfBounds (as the first window check would) without the refused call it used to cost.
    clocks = _Clocks(metering_emulator, "2026-12-10T13:59:58Z")
    metering_emulator.admin.add_fault(type="unprocessed", count=1, operations=["BatchMeterUsage"])
    records = [a_record(timestamp=at("2026-12-09T13:59:59Z"), quantity=1),
               a_record(customer="cust-demo-0002", timestamp=at("2026-12-10T13:00:00Z"), quantity=2)]
    outcome = run_batch(BATCH, direct_client(metering_emulator.url), {"ProductCode": PRODUCT, "UsageRecords": records},
                        now=clocks(), window_hours=24, out_of_window="skip",
                        sleep=lambda _delay: clocks.move("2026-12-10T14:00:05Z"), clock=clocks)
    summary = batch_summary(BATCH, outcome)
    assert [(r["RecordIndex"], r["Status"]) for r in summary["Results"]] == [
        (0, "TimestampOutOfBounds"), (1, "Success")]
    assert "ErrorCode" not in summary["Results"][0] and "MeteringRecordId" not in summary["Results"][0]
    assert outcome.calls == 1 and batch_calls(metering_emulator) == 1
    assert [r["quantity"] for r in metering_emulator.admin.records()["records"]] == [2]


def test_given_a_record_reaching_24_hours_while_a_bad_one_is_isolated_then_isolation_calls_leave_it_out(
        metering_emulator: EmulatorServer) -> None:
    # The first call is refused for record 1's dimension; meanwhile record 0 turns 24 h old. The isolation
    # calls carry neither it (reported as held back, no AWS code) nor anything answered.
    clocks = _Clocks(metering_emulator, "2026-12-10T10:30:00Z")
    records = [a_record(timestamp=at("2026-12-09T10:30:02Z"), quantity=9),
               a_record(dimension="no_such_dimension", timestamp=at("2026-12-10T09:00:00Z")),
               *[a_record(customer="cust-demo-0002", dimension=d, quantity=3, timestamp=at("2026-12-10T09:00:00Z"))
                 for d in ("users", "api_calls")]]
    client = _MovingTimeAfterCall(clocks, after=1, then="2026-12-10T10:30:05Z")
    outcome = run_batch(BATCH, client, {"ProductCode": PRODUCT, "UsageRecords": records}, now=clocks(),
                        window_hours=24, out_of_window="skip", clock=clocks)
    summary = batch_summary(BATCH, outcome)
    assert [r["Status"] for r in summary["Results"]] == ["TimestampOutOfBounds", "Rejected", "Success", "Success"]
    assert "ErrorCode" not in summary["Results"][0]
    assert summary["Results"][1]["ErrorCode"] == "InvalidUsageDimensionException"
    sent_later = [r["Quantity" if "Quantity" in r else "QuantityAsDecimal"]
                  for payload in client.payloads[1:] for r in payload["UsageRecords"]]
    assert "9" not in sent_later and 9 not in sent_later  # record 0 went out only in the first (refused) call
    assert sorted(r["quantity"] for r in metering_emulator.admin.records()["records"]) == [3, 3]


def test_given_summed_records_whose_earliest_reaches_24_hours_mid_message_then_the_rest_of_the_hour_is_billed(
        metering_emulator: EmulatorServer) -> None:
    # Records 25 and 26 (one customer, dimension and hour) are summed under 25's timestamp. When their chunk
    # is sent, 25 is 24 h old: only 26 is billed, alone, and 25 is reported out of window.
    metering_emulator.admin.load_fixtures(many_customers(10))
    metering_emulator.admin.set_config(quotas=False)
    clocks = _Clocks(metering_emulator, "2026-12-10T10:00:05Z")
    records = distinct_records(25)
    for record in records:
        record["Timestamp"] = at("2026-12-10T09:00:00Z")
    records += [a_record(customer="cust-00009", timestamp=at("2026-12-09T10:00:10Z"), quantity=4),
                a_record(customer="cust-00009", timestamp=at("2026-12-09T10:40:00Z"), quantity=6)]
    client = _MovingTimeAfterCall(clocks, after=1, then="2026-12-10T10:00:30Z")
    outcome = run_batch(BATCH, client, {"ProductCode": PRODUCT, "UsageRecords": records}, now=clocks(),
                        window_hours=24, out_of_window="skip", same_hour="sum", clock=clocks)
    summary = batch_summary(BATCH, outcome)
    assert summary["RecordCount"] == 27 and [r["RecordIndex"] for r in summary["Results"]] == list(range(27))
    assert [r["Status"] for r in summary["Results"][25:]] == ["TimestampOutOfBounds", "Success"]
    assert summary["Results"][26]["BilledQuantity"] == "6" and "SummedRecordIndexes" not in summary["Results"][26]
    assert outcome.calls == 2
    assert [payload["UsageRecords"] for payload in client.payloads[1:]] == [[
        {"Timestamp": at("2026-12-09T10:40:00Z"), "CustomerIdentifier": "cust-00009", "Dimension": "users",
         "QuantityAsDecimal": "6"}]]
    stored = [r for r in metering_emulator.admin.records()["records"] if r["customerIdentifier"] == "cust-00009"]
    assert [(r["dimension"], r["quantity"], r["submissions"]) for r in stored] == [("users", 6, 1)]
    assert summary["Results"][26]["MeteringRecordId"] == stored[0]["meteringRecordId"]


def _summed_hour(statuses: list[str], stored: list[dict[str, Any]], summary: dict[str, Any]) -> None:
    """Records 1 and 2 of the hour were billed as one sum of 11, under record 1's timestamp."""
    assert [r["Status"] for r in summary["Results"]] == statuses
    assert [r["quantity"] for r in stored] == [11]
    for result in summary["Results"][1:]:
        assert result["BilledQuantity"] == "11" and result["SummedRecordIndexes"] == [1, 2]
        assert result["MeteringRecordId"] == stored[0]["meteringRecordId"]


def test_given_a_summed_record_whose_earliest_member_aws_finds_24_hours_old_then_the_rest_is_summed_and_billed(
        metering_emulator: EmulatorServer) -> None:
    """AWS's clock is 5 s ahead: the sum, carrying its earliest member's timestamp, is refused; the members
    inside the window by AWS's clock too are summed anew and billed (before: the whole hour went unbilled)."""
    metering_emulator.admin.set_clock(now="2026-12-10T10:00:05Z", frozen=True)
    records = [a_record(timestamp=at("2026-12-09T10:00:02Z"), quantity=4),
               a_record(timestamp=at("2026-12-09T10:20:00Z"), quantity=5),
               a_record(timestamp=at("2026-12-09T10:50:00Z"), quantity=6)]
    outcome = run_batch(BATCH, direct_client(metering_emulator.url), {"ProductCode": PRODUCT, "UsageRecords": records},
                        now=float(at("2026-12-10T10:00:00Z")), window_hours=24, out_of_window="skip",
                        same_hour="sum", clock=lambda: float(at("2026-12-10T10:00:00Z")))
    summary = batch_summary(BATCH, outcome)
    _summed_hour(["TimestampOutOfBounds", "Success", "Success"], metering_emulator.admin.records()["records"], summary)
    assert summary["Results"][0]["ErrorCode"] == "TimestampOutOfBoundsException"
    assert outcome.calls == 2 and outcome.isolation_calls == 1


def test_given_a_summed_record_starting_before_the_license_was_activated_then_the_licensed_part_is_billed(
        metering_emulator: EmulatorServer) -> None:
    fixtures = copy.deepcopy(DEFAULT_FIXTURES)
    start = int(time.time() // 3600 * 3600) - 3600  # the previous hour
    for customer in fixtures["products"][0]["customers"]:
        if customer.get("licenseArn") == LICENSE:
            customer["licenseStart"] = start + 1800  # activated at hh:30
    metering_emulator.admin.load_fixtures(fixtures)
    licensed = {"CustomerAWSAccountId": ACCOUNT, "LicenseArn": LICENSE, "Dimension": "users"}
    records = [{**licensed, "Timestamp": start + 600, "QuantityAsDecimal": "4"},  # hh:10, before the activation
               {**licensed, "Timestamp": start + 2400, "QuantityAsDecimal": "5"},
               {**licensed, "Timestamp": start + 2700, "QuantityAsDecimal": "6"}]
    outcome = run_batch(BATCH, direct_client(metering_emulator.url), {"UsageRecords": records}, now=time.time(),
                        window_hours=24, out_of_window="skip", same_hour="sum")
    summary = batch_summary(BATCH, outcome)
    _summed_hour(["Rejected", "Success", "Success"], metering_emulator.admin.records()["records"], summary)
    assert summary["Results"][0]["ErrorCode"] == "InvalidLicenseException"


def test_given_a_summed_record_refused_for_what_every_member_carries_then_it_is_sent_once(
        metering_emulator: EmulatorServer) -> None:
    """A misspelt dimension concerns every member: no second call without the earliest one."""
    records = [a_record(dimension="user", timestamp=SESSION_HOUR + 60 * i, quantity=i + 1) for i in range(3)]
    outcome = run_batch(BATCH, direct_client(metering_emulator.url), {"ProductCode": PRODUCT, "UsageRecords": records},
                        now=time.time(), window_hours=24, out_of_window="skip", same_hour="sum")
    assert [r.status for r in sorted(outcome.results, key=lambda r: r.position)] == ["Rejected"] * 3
    assert outcome.calls == 1


def test_given_same_hour_records_whose_sum_would_not_fit_one_call_then_they_are_sent_as_they_are(
        metering_emulator: EmulatorServer, caplog: pytest.LogCaptureFixture) -> None:
    """Each record fits a call (under 1 MB) but their merged allocations would not: sent unsummed (logged), as
    a group whose sum exceeds AWS's limits is, instead of failing the whole message."""
    tags = [{"Key": f"key{j}" + "k" * 90, "Value": "v" * 256} for j in range(5)]

    def allocated(first: int, each: int) -> dict[str, Any]:
        return {"Timestamp": SESSION_HOUR, "CustomerAWSAccountId": ACCOUNT, "LicenseArn": LICENSE,
                "Dimension": "users", "QuantityAsDecimal": str(400 * each),
                "UsageAllocations": [{"AllocatedUsageQuantityAsDecimal": str(each),
                                      "Tags": [dict(tag, Value=f"{i:06d}" + tag["Value"][6:]) for tag in tags]}
                                     for i in range(first, first + 400)]}

    records = [allocated(0, 1), allocated(400, 2)]  # AWS keeps the hour's first: the second is a duplicate
    assert all(500_000 < len(json.dumps(r)) < 1_000_000 for r in records)
    with caplog.at_level(logging.WARNING, logger="lib.batch"):
        outcome = run_batch(BATCH, direct_client(metering_emulator.url), {"UsageRecords": records},
                            now=time.time(), window_hours=24, out_of_window="skip", same_hour="sum")
    assert [r.status for r in sorted(outcome.results, key=lambda r: r.position)] == ["Success", "DuplicateRecord"]
    assert outcome.calls == 2
    assert "would not fit one call" in caplog.text


def test_given_a_batch_then_each_answered_call_logs_the_ids_it_billed_at_once(
        metering_emulator: EmulatorServer, caplog: pytest.LogCaptureFixture) -> None:
    # Should the process die before its output is published and the redelivery find a record out of AWS's
    # window, the log is where that record's id is: written as each reply arrives, not with the summary.
    metering_emulator.admin.load_fixtures(many_customers(10))
    metering_emulator.admin.set_config(quotas=False)
    with caplog.at_level(logging.INFO, logger="lib.batch"):
        out = run_action("batchMeterUsage", {"ProductCode": PRODUCT, "UsageRecords": distinct_records(30)},
                         a_config(metering_emulator.url))
    lines = [r.getMessage() for r in caplog.records if r.name == "lib.batch" and " billed " in r.getMessage()]
    results = out["body"]["Results"]
    assert len(lines) == 2 and len(out["body"]["RequestIds"]) == 2  # one line per call, naming its request
    for request_id, line in zip(out["body"]["RequestIds"], lines, strict=True):
        assert f"request {request_id} billed" in line
    for result in results:
        assert sum(f"#{result['RecordIndex']}={result['MeteringRecordId']}" in line for line in lines) == 1
    assert SECRET_KEY not in caplog.text
