"""Batch Meter Usage with any number of records: chunks, resubmission, window, redelivery."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from metering_emulator.testing import DEFAULT_FIXTURES, EmulatorServer

from lib.batch import chunk, window_bounds
from lib.client import MeteringClient, Settings
from lib.errors import MeteringError
from lib.resilience import Pacer
from spec.connector.builders import PRODUCT, a_config, a_record, hour_start, run_action

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


def test_given_a_time_then_the_window_is_hour_aligned() -> None:
    earliest, latest = window_bounds(13.5 * 3600, 6)
    assert earliest == 7 * 3600 and latest == 13.5 * 3600 + 300


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
