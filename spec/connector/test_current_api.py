"""Billing against today's Metering API (botocore 1.44.8): windows, month-end cut-off, decimal quantities,
concurrent agreements, same-hour summing, isolation of bad records, robust result matching.

Every test talks to the emulator over HTTP and audits what it billed (``admin.records()``).
"""

from __future__ import annotations

import calendar
import copy
import json
import time
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from metering_emulator.testing import DEFAULT_FIXTURES, EmulatorServer

from lib import quantity
from lib.batch import run_batch, window_bounds
from lib.client import MeteringClient, Settings
from lib.errors import MeteringError
from lib.operations import OPERATIONS
from lib.resilience import Backoff
from lib.runner import summary_budget
from spec.connector.builders import (
    ACCESS_KEY,
    ACCOUNT,
    CUSTOMER,
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
SECOND_LICENSE = "arn:aws:license-manager::111122223333:license:l-fedcba9876543210fedcba9876543210"


def at(text: str) -> int:
    """Epoch seconds of an ISO UTC time ``YYYY-MM-DDTHH:MM:SSZ``."""
    return calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ"))


def billed(emu: EmulatorServer, **match: Any) -> list[dict[str, Any]]:
    """The emulator's stored records (optionally only those whose fields equal ``match``)."""
    records = emu.admin.records()["records"]
    return [r for r in records if all(r.get(k) == v for k, v in match.items())]


def calls(emu: EmulatorServer, operation: str = "BatchMeterUsage") -> int:
    return int(emu.admin.stats()["operations"].get(operation, {}).get("calls", 0))


def license_fixtures() -> dict[str, Any]:
    """The default fixtures with a second license of the same buyer account (concurrent agreements)."""
    fixtures = copy.deepcopy(DEFAULT_FIXTURES)
    customers = fixtures["products"][0]["customers"]
    if not any(c.get("licenseArn") == SECOND_LICENSE for c in customers):
        customers.append({"customerAWSAccountId": ACCOUNT, "licenseArn": SECOND_LICENSE})
    return fixtures


def a_decimal_record(value: str, **fields: Any) -> dict[str, Any]:
    """A legacy-customer record whose quantity is the decimal string ``value``."""
    record = {key: v for key, v in a_record(**fields).items() if key != "Quantity"}
    record["QuantityAsDecimal"] = value
    return record


def a_license_record(license_arn: str = LICENSE, **fields: Any) -> dict[str, Any]:
    record = {"Timestamp": SESSION_HOUR, "CustomerAWSAccountId": ACCOUNT, "LicenseArn": license_arn,
              "Dimension": "users", "QuantityAsDecimal": "1"}
    record.update(fields)
    return record


# --- windows ---------------------------------------------------------------------------------------


def test_given_a_record_20_hours_old_when_batch_metering_by_default_then_it_is_billed(
        metering_emulator: EmulatorServer) -> None:
    record = a_record(timestamp=hour_start(-20) + 120, quantity=3)
    out = run_action("batchMeterUsage", {"ProductCode": PRODUCT, "UsageRecords": [record]},
                     a_config(metering_emulator.url))["body"]
    assert out["Results"][0]["Status"] == "Success" and out["AllSucceeded"]
    assert [r["quantityDecimal"] for r in billed(metering_emulator)] == ["3"]


def test_given_a_record_25_hours_old_then_it_is_reported_out_of_window_and_never_sent(
        metering_emulator: EmulatorServer) -> None:
    out = run_action("batchMeterUsage", {"ProductCode": PRODUCT, "UsageRecords": [a_record(timestamp=hour_start(-25))]},
                     a_config(metering_emulator.url))["body"]
    assert out["Results"][0]["Status"] == "TimestampOutOfBounds"
    assert calls(metering_emulator) == 0 and billed(metering_emulator) == []


def test_given_meter_usage_then_the_window_stays_6_hours(metering_emulator: EmulatorServer) -> None:
    body = {"ProductCode": PRODUCT, "UsageDimension": "users", "UsageQuantityAsDecimal": "1"}
    ok = run_action("meterUsage", {**body, "Timestamp": hour_start(-5)}, a_config(metering_emulator.url))["body"]
    assert ok["MeteringRecordId"]
    with pytest.raises(MeteringError) as refused:
        run_action("meterUsage", {**body, "Timestamp": hour_start(-7), "UsageDimension": "api_calls"},
                   a_config(metering_emulator.url))
    assert refused.value.code == "TimestampOutOfBoundsException" and not refused.value.retryable


@pytest.mark.parametrize(("clock", "november_status"), [("2026-12-01T05:59:00Z", "Success"),
                                                        ("2026-12-01T06:01:00Z", "TimestampOutOfBounds")])
def test_given_the_first_of_the_month_then_last_months_records_are_accepted_until_6_utc(
        metering_emulator: EmulatorServer, clock: str, november_status: str) -> None:
    metering_emulator.admin.set_clock(now=clock, frozen=True)
    november = a_record(timestamp=at("2026-11-30T23:10:00Z"), quantity=4)
    december = a_record(timestamp=at("2026-12-01T05:00:00Z"), quantity=5, dimension="api_calls")
    out = run_action("batchMeterUsage", {"ProductCode": PRODUCT, "UsageRecords": [november, december]},
                     a_config(metering_emulator.url), now=lambda: float(at(clock)))["body"]
    assert [r["Status"] for r in out["Results"]] == [november_status, "Success"]
    assert sorted(r["quantityDecimal"] for r in billed(metering_emulator)) == (
        ["4", "5"] if november_status == "Success" else ["5"])
    assert calls(metering_emulator) == 1  # the stale record never sank the call


def test_given_the_connector_clock_behind_the_cut_off_when_aws_refuses_the_call_then_only_the_stale_record_fails(
        metering_emulator: EmulatorServer) -> None:
    # The connector believes it is 05:59 (clock skew); AWS (the emulator) is at 06:01 and refuses the call.
    metering_emulator.admin.set_clock(now="2026-12-01T06:01:00Z", frozen=True)
    records = [a_record(customer=CUSTOMER, timestamp=at("2026-12-01T05:00:00Z"), quantity=1),
               a_record(customer=CUSTOMER, timestamp=at("2026-11-30T23:00:00Z"), quantity=2, dimension="api_calls"),
               a_record(customer="cust-demo-0002", timestamp=at("2026-12-01T04:00:00Z"), quantity=3)]
    out = run_action("batchMeterUsage", {"ProductCode": PRODUCT, "UsageRecords": records},
                     a_config(metering_emulator.url), now=lambda: float(at("2026-12-01T05:59:00Z")))["body"]
    assert [r["Status"] for r in out["Results"]] == ["Success", "TimestampOutOfBounds", "Success"]
    assert out["Results"][1]["ErrorCode"] == "TimestampOutOfBoundsException"
    assert sorted(r["quantityDecimal"] for r in billed(metering_emulator)) == ["1", "3"]


def test_window_bounds_follow_the_month_end_cut_off() -> None:
    before = window_bounds(at("2026-12-01T05:59:00Z"), 24)[0]
    after = window_bounds(at("2026-12-01T06:00:00Z"), 24)[0]
    mid_month = window_bounds(at("2026-12-15T10:30:00Z"), 24)[0]
    assert before == at("2026-11-30T05:59:01Z")  # exactly 24 h old is refused: the first accepted second
    assert after == at("2026-12-01T00:00:00Z")
    assert mid_month == at("2026-12-14T10:30:01Z")


def _cut_off_mid_message(emu: EmulatorServer, november: int, december: int) -> tuple[
        dict[str, Any], list[float], MeteringClient]:
    """A message started at 05:59:58 on Dec 1 whose first call takes the cut-off's last seconds: after it,
    AWS (the emulator) and the connector's clock both read 06:00:01. ``november`` records of Nov 30 (one per
    customer), then ``december`` of Dec 1; returns the body, the connector's clock and the client."""
    fixtures = copy.deepcopy(DEFAULT_FIXTURES)
    fixtures["products"][0]["customers"] = [{"customerIdentifier": f"cust-{i:03d}"} for i in range(november)]
    emu.admin.load_fixtures(fixtures)
    emu.admin.set_config(quotas=False)
    emu.admin.set_clock(now="2026-12-01T05:59:58Z", frozen=True)
    moment = [float(at("2026-12-01T05:59:58Z"))]

    class CutOffPassesDuringTheFirstCall(MeteringClient):
        def call(self, op: Any, payload: dict[str, Any]) -> Any:
            reply = super().call(op, payload)
            if moment[0] < at("2026-12-01T06:00:01Z"):
                emu.admin.set_clock(now="2026-12-01T06:00:01Z", frozen=True)
                moment[0] = float(at("2026-12-01T06:00:01Z"))
            return reply

    records = [a_record(customer=f"cust-{i:03d}", timestamp=at("2026-11-30T12:00:00Z"), quantity=1)
               for i in range(november)]
    records += [a_record(customer=f"cust-{i:03d}", timestamp=at("2026-12-01T05:00:00Z"), quantity=2,
                         dimension="api_calls") for i in range(december)]
    client = CutOffPassesDuringTheFirstCall(Settings.create(ACCESS_KEY, SECRET_KEY, endpoint_url=emu.url))
    return {"ProductCode": PRODUCT, "UsageRecords": records}, moment, client


def test_given_the_cut_off_passing_mid_message_then_later_calls_leave_last_months_records_out_and_bill_the_rest(
        metering_emulator: EmulatorServer) -> None:
    # Before: every later chunk of November records was refused whole and isolated record by record until the
    # 100 isolation calls ran out; the message then failed and December's records were never sent.
    body, moment, client = _cut_off_mid_message(metering_emulator, november=75, december=10)
    out = run_action("batchMeterUsage", body, a_config(metering_emulator.url), client=client,
                     now=lambda: moment[0])["body"]
    statuses = [r["Status"] for r in out["Results"]]
    assert statuses == ["Success"] * 25 + ["TimestampOutOfBounds"] * 50 + ["Success"] * 10
    assert out["RecordCount"] == 85 and [r["RecordIndex"] for r in out["Results"]] == list(range(85))
    assert all("ErrorCode" not in r for r in out["Results"][25:75])  # held back as in the first check: not sent
    assert calls(metering_emulator) == 2  # the first chunk, then December's: no call carried a stale record
    stored = billed(metering_emulator)
    assert sorted(r["quantityDecimal"] for r in stored) == ["1"] * 25 + ["2"] * 10
    ids = {r["meteringRecordId"] for r in stored}
    assert {r["MeteringRecordId"] for r in out["Results"] if r["Status"] == "Success"} == ids


def test_given_the_cut_off_passing_mid_message_when_configured_to_fail_then_it_stops_naming_them_and_the_billed_ids(
        metering_emulator: EmulatorServer) -> None:
    body, moment, client = _cut_off_mid_message(metering_emulator, november=60, december=5)
    with pytest.raises(MeteringError) as failed:
        run_action("batchMeterUsage", body, a_config(metering_emulator.url, outOfWindow="fail"), client=client,
                   now=lambda: moment[0])
    err = failed.value
    assert err.code == "TimestampOutOfBoundsException" and not err.retryable  # an error event, not a rebound
    assert [p.path for p in err.problems] == [f"/UsageRecords/{i}/Timestamp" for i in range(25, 60)]
    assert "35 record(s) left the timestamp window" in str(err) and "5 other record(s)" in str(err)
    assert "25 record(s) had been metered" in str(err)
    assert calls(metering_emulator) == 1  # nothing more was sent once the cut-off had passed
    details = err.error_details
    stored = billed(metering_emulator)
    assert [r["RecordIndex"] for r in details["billedRecords"]] == list(range(25))
    assert {r["MeteringRecordId"] for r in details["billedRecords"]} == {r["meteringRecordId"] for r in stored}


def test_given_meter_usage_then_a_timestamp_exactly_6_hours_old_is_sent_and_accepted(
        metering_emulator: EmulatorServer) -> None:
    # The model: MeterUsage takes a timestamp "up to six hours in the past" (exactly, not hour-aligned).
    metering_emulator.admin.set_clock(now="2026-12-10T10:30:00Z", frozen=True)
    body = {"ProductCode": PRODUCT, "UsageDimension": "users", "UsageQuantityAsDecimal": "1"}
    ok = run_action("meterUsage", {**body, "Timestamp": at("2026-12-10T04:30:00Z")},
                    a_config(metering_emulator.url))["body"]
    assert ok["MeteringRecordId"]
    with pytest.raises(MeteringError) as refused:
        run_action("meterUsage", {**body, "Timestamp": at("2026-12-10T04:29:59Z"), "UsageDimension": "api_calls"},
                   a_config(metering_emulator.url))
    assert refused.value.code == "TimestampOutOfBoundsException"


# --- decimal quantities ----------------------------------------------------------------------------


def test_given_a_fractional_quantity_then_it_is_billed_exactly(metering_emulator: EmulatorServer) -> None:
    record = a_decimal_record("17.42")
    out = run_action("batchMeterUsage", {"ProductCode": PRODUCT, "UsageRecords": [record]},
                     a_config(metering_emulator.url))["body"]
    assert out["Results"][0]["Status"] == "Success" and out["Results"][0]["BilledQuantity"] == "17.42"
    assert [r["quantityDecimal"] for r in billed(metering_emulator)] == ["17.42"]


def test_given_a_fractional_meter_usage_then_it_is_billed_exactly(metering_emulator: EmulatorServer) -> None:
    body = {"ProductCode": PRODUCT, "Timestamp": SESSION_HOUR, "UsageDimension": "storage_gb",
            "UsageQuantityAsDecimal": "2.5",
            "UsageAllocations": [{"AllocatedUsageQuantityAsDecimal": "0.1", "Tags": [{"Key": "team", "Value": "a"}]},
                                 {"AllocatedUsageQuantityAsDecimal": "2.4"}]}
    out = run_action("meterUsage", body, a_config(metering_emulator.url))["body"]
    assert out["MeteringRecordId"]
    assert [r["quantityDecimal"] for r in billed(metering_emulator, operation="MeterUsage")] == ["2.5"]


def test_given_a_whole_quantity_then_the_connector_sends_the_decimal_member_with_the_same_value(
        metering_emulator: EmulatorServer) -> None:
    record = a_record(quantity=17)
    record["UsageAllocations"] = [{"AllocatedUsageQuantity": 10, "Tags": [{"Key": "k", "Value": "v"}]},
                                  {"AllocatedUsageQuantity": 7}]
    assert quantity.to_wire(record, quantity.RECORD)["QuantityAsDecimal"] == "17"
    out = run_action("batchMeterUsage", {"ProductCode": PRODUCT, "UsageRecords": [record]},
                     a_config(metering_emulator.url))["body"]
    assert out["Results"][0]["Status"] == "Success"
    assert out["Results"][0]["UsageRecord"]["Quantity"] == 17  # reported as the user gave it
    assert [r["quantityDecimal"] for r in billed(metering_emulator)] == ["17"]


@pytest.mark.parametrize("again", [{"QuantityAsDecimal": "17.00"}, {"Quantity": 17}, {"QuantityAsDecimal": "17.0"}])
def test_given_the_same_quantity_in_another_form_then_it_is_the_same_record_billed_once(
        metering_emulator: EmulatorServer, again: dict[str, Any]) -> None:
    first = a_decimal_record("17")
    second = {key: value for key, value in first.items() if key != "QuantityAsDecimal"} | again
    one = run_action("batchMeterUsage", {"ProductCode": PRODUCT, "UsageRecords": [first]},
                     a_config(metering_emulator.url))["body"]["Results"][0]
    two = run_action("batchMeterUsage", {"ProductCode": PRODUCT, "UsageRecords": [second]},
                     a_config(metering_emulator.url))["body"]["Results"][0]
    assert one["Status"] == two["Status"] == "Success"
    assert one["MeteringRecordId"] == two["MeteringRecordId"]
    assert len(billed(metering_emulator)) == 1


def test_given_another_quantity_for_the_same_hour_then_it_is_a_duplicate_and_not_billed(
        metering_emulator: EmulatorServer) -> None:
    first = a_decimal_record("17.5")
    run_action("batchMeterUsage", {"ProductCode": PRODUCT, "UsageRecords": [first]}, a_config(metering_emulator.url))
    second = {**first, "QuantityAsDecimal": "17.6"}
    out = run_action("batchMeterUsage", {"ProductCode": PRODUCT, "UsageRecords": [second]},
                     a_config(metering_emulator.url))["body"]
    assert out["Results"][0]["Status"] == "DuplicateRecord" and not out["AllSucceeded"]
    assert [r["quantityDecimal"] for r in billed(metering_emulator)] == ["17.5"]


def problems_of(action: str, body: Any, url: str) -> list[dict[str, str]]:
    with pytest.raises(MeteringError) as failed:
        run_action(action, body, a_config(url))
    assert failed.value.code == "ValidationFailed"
    return list(failed.value.error_details["problems"])


def test_given_both_quantity_members_then_the_error_names_both_paths_and_nothing_is_sent(
        metering_emulator: EmulatorServer) -> None:
    record = {**a_record(quantity=2), "QuantityAsDecimal": "2"}
    found = problems_of("batchMeterUsage", {"ProductCode": PRODUCT, "UsageRecords": [a_record(), record]},
                        metering_emulator.url)
    assert found[0]["path"] == "/UsageRecords/1"
    problem = found[0]["problem"]
    assert "/UsageRecords/1/Quantity" in problem and "/UsageRecords/1/QuantityAsDecimal" in problem
    request = {"ProductCode": PRODUCT, "Timestamp": SESSION_HOUR, "UsageDimension": "users", "UsageQuantity": 1,
               "UsageQuantityAsDecimal": "1"}
    found = problems_of("meterUsage", request, metering_emulator.url)
    assert "/UsageQuantity" in found[0]["problem"] and "/UsageQuantityAsDecimal" in found[0]["problem"]
    assert calls(metering_emulator) == calls(metering_emulator, "MeterUsage") == 0


def test_given_allocations_of_another_kind_than_their_record_then_they_are_refused_before_any_call(
        metering_emulator: EmulatorServer) -> None:
    record = a_decimal_record("3")
    record["UsageAllocations"] = [{"AllocatedUsageQuantity": 3}]
    found = problems_of("batchMeterUsage", {"ProductCode": PRODUCT, "UsageRecords": [record]}, metering_emulator.url)
    assert found[0]["path"] == "/UsageRecords/0/UsageAllocations/0"
    assert "AllocatedUsageQuantityAsDecimal" in found[0]["problem"]
    assert calls(metering_emulator) == 0


def test_given_decimal_allocations_then_their_sum_is_exact(metering_emulator: EmulatorServer) -> None:
    record = a_decimal_record("0.3")
    record["UsageAllocations"] = [{"AllocatedUsageQuantityAsDecimal": "0.1", "Tags": [{"Key": "a", "Value": "1"}]},
                                  {"AllocatedUsageQuantityAsDecimal": "0.2", "Tags": [{"Key": "a", "Value": "2"}]}]
    out = run_action("batchMeterUsage", {"ProductCode": PRODUCT, "UsageRecords": [record]},
                     a_config(metering_emulator.url))["body"]
    assert out["Results"][0]["Status"] == "Success"
    record["UsageAllocations"][1]["AllocatedUsageQuantityAsDecimal"] = "0.200001"
    found = problems_of("batchMeterUsage", {"ProductCode": PRODUCT, "UsageRecords": [record]}, metering_emulator.url)
    assert found == [{"path": "/UsageRecords/0/UsageAllocations",
                      "problem": "allocated quantities add up to 0.300001, not to the record's quantity 0.3"}]


decimals = st.decimals(min_value=0, max_value=Decimal("9999.999999"), places=6, allow_nan=False, allow_infinity=False)


@settings(max_examples=200, deadline=None)
@given(parts=st.lists(decimals, min_size=1, max_size=20))
def test_property_allocations_adding_up_exactly_pass_and_one_millionth_off_fails(parts: list[Decimal]) -> None:
    total = sum(parts, Decimal(0))
    allocations = [{"AllocatedUsageQuantityAsDecimal": quantity.render(p), "Tags": [{"Key": "i", "Value": str(i)}]}
                   for i, p in enumerate(parts)]
    record = {"QuantityAsDecimal": quantity.render(total), "UsageAllocations": allocations}
    assert quantity.problems(record, "/r", quantity.RECORD) == []
    record["QuantityAsDecimal"] = quantity.render(total + Decimal("0.000001"))
    assert [p.path for p in quantity.problems(record, "/r", quantity.RECORD)] == ["/r/UsageAllocations"]


@settings(max_examples=300, deadline=None)
@given(value=decimals)
def test_property_render_gives_the_api_form_of_the_same_value(value: Decimal) -> None:
    text = quantity.render(value)
    assert quantity.DECIMAL_PATTERN.match(text) and Decimal(text) == value


# --- concurrent agreements ---------------------------------------------------------------------------


def test_given_two_licenses_of_one_account_then_the_same_hour_and_dimension_are_metered_independently(
        metering_emulator: EmulatorServer) -> None:
    metering_emulator.admin.load_fixtures(license_fixtures())
    records = [a_license_record(LICENSE, QuantityAsDecimal="2"),
               a_license_record(SECOND_LICENSE, QuantityAsDecimal="5")]
    out = run_action("batchMeterUsage", {"UsageRecords": records}, a_config(metering_emulator.url))["body"]
    assert [r["Status"] for r in out["Results"]] == ["Success", "Success"]
    assert out["Results"][0]["MeteringRecordId"] != out["Results"][1]["MeteringRecordId"]
    by_license = {r["licenseArn"]: r["quantityDecimal"] for r in billed(metering_emulator)}
    assert by_license == {LICENSE: "2", SECOND_LICENSE: "5"}


def test_given_a_product_code_with_license_records_then_the_message_is_refused_before_any_call(
        metering_emulator: EmulatorServer) -> None:
    body = {"ProductCode": PRODUCT, "UsageRecords": [a_record(), a_license_record()]}
    found = problems_of("batchMeterUsage", body, metering_emulator.url)
    assert found[0]["path"] == "/ProductCode" and "/UsageRecords/1/LicenseArn" in found[0]["problem"]
    assert calls(metering_emulator) == 0


def test_given_resolve_customer_then_the_agreement_id_is_returned(metering_emulator: EmulatorServer) -> None:
    token = metering_emulator.admin.mint_token(PRODUCT, {"customerAWSAccountId": ACCOUNT, "licenseArn": LICENSE})
    out = run_action("resolveCustomer", {"RegistrationToken": token}, a_config(metering_emulator.url))["body"]
    assert out["CustomerAWSAccountId"] == ACCOUNT and out["LicenseArn"] == LICENSE
    assert out["Metadata"]["AgreementId"]


# --- same-hour records -------------------------------------------------------------------------------


def same_hour_records() -> list[dict[str, Any]]:
    tag = [{"Key": "team", "Value": "a"}]
    return [
        {"Timestamp": SESSION_HOUR + 60, "CustomerIdentifier": CUSTOMER, "Dimension": "users",
         "QuantityAsDecimal": "1.5",
         "UsageAllocations": [{"AllocatedUsageQuantityAsDecimal": "1.5", "Tags": tag}]},
        {"Timestamp": SESSION_HOUR + 600, "CustomerIdentifier": CUSTOMER, "Dimension": "users", "Quantity": 2},
        {"Timestamp": SESSION_HOUR + 1200, "CustomerIdentifier": CUSTOMER, "Dimension": "users",
         "QuantityAsDecimal": "0.25", "UsageAllocations": [{"AllocatedUsageQuantityAsDecimal": "0.25", "Tags": tag}]},
        {"Timestamp": SESSION_HOUR + 60, "CustomerIdentifier": CUSTOMER, "Dimension": "api_calls", "Quantity": 9},
    ]


def test_given_same_hour_records_by_default_then_aws_keeps_the_first_and_the_others_are_duplicates(
        metering_emulator: EmulatorServer) -> None:
    out = run_action("batchMeterUsage", {"ProductCode": PRODUCT, "UsageRecords": same_hour_records()},
                     a_config(metering_emulator.url))["body"]
    assert [r["Status"] for r in out["Results"]] == ["Success", "DuplicateRecord", "DuplicateRecord", "Success"]


def test_given_same_hour_records_with_summing_then_one_record_bills_their_exact_sum(
        metering_emulator: EmulatorServer) -> None:
    out = run_action("batchMeterUsage", {"ProductCode": PRODUCT, "UsageRecords": same_hour_records()},
                     a_config(metering_emulator.url, sameHourRecords="sum"))["body"]
    results = out["Results"]
    assert [r["Status"] for r in results] == ["Success"] * 4 and out["AllSucceeded"]
    assert [r["RecordIndex"] for r in results] == [0, 1, 2, 3]  # one entry per incoming record
    assert {r["MeteringRecordId"] for r in results[:3]} == {results[0]["MeteringRecordId"]}
    assert results[0]["SummedRecordIndexes"] == [0, 1, 2] and results[0]["BilledQuantity"] == "3.75"
    assert "SummedRecordIndexes" not in results[3]
    stored = {r["dimension"]: r for r in billed(metering_emulator)}
    assert stored["users"]["quantityDecimal"] == "3.75" and stored["api_calls"]["quantityDecimal"] == "9"
    assert calls(metering_emulator) == 1


# --- isolation, matching, resubmission ------------------------------------------------------------


def test_given_one_bad_record_in_a_chunk_then_every_other_record_is_billed_and_the_bad_one_reported(
        metering_emulator: EmulatorServer) -> None:
    fixtures = copy.deepcopy(DEFAULT_FIXTURES)
    fixtures["products"][0]["customers"] = [{"customerIdentifier": f"cust-{i:03d}"} for i in range(25)]
    metering_emulator.admin.load_fixtures(fixtures)
    records = [a_record(customer=f"cust-{i:03d}", quantity=i + 1) for i in range(25)]
    records[13]["Dimension"] = "no_such_dimension"
    out = run_action("batchMeterUsage", {"ProductCode": PRODUCT, "UsageRecords": records},
                     a_config(metering_emulator.url))["body"]
    statuses = [r["Status"] for r in out["Results"]]
    assert statuses.count("Success") == 24 and statuses[13] == "Rejected"
    assert out["Results"][13]["ErrorCode"] == "InvalidUsageDimensionException"
    assert out["StatusCounts"]["Rejected"] == 1
    assert len(billed(metering_emulator)) == 24
    assert calls(metering_emulator) <= 2 * 5 + 1  # halving 25 down to 1 takes at most 5 levels


def test_given_normalised_echoes_then_every_record_is_matched_without_resubmission(
        metering_emulator: EmulatorServer) -> None:
    metering_emulator.admin.set_config(echo="normalised")
    records = [a_record(customer=CUSTOMER, quantity=0), a_decimal_record("4.5", customer="cust-demo-0002")]
    records.append({"Timestamp": SESSION_HOUR, "CustomerIdentifier": CUSTOMER, "Dimension": "api_calls"})
    out = run_action("batchMeterUsage", {"ProductCode": PRODUCT, "UsageRecords": records},
                     a_config(metering_emulator.url))["body"]
    assert [r["Status"] for r in out["Results"]] == ["Success"] * 3
    assert calls(metering_emulator) == 1


def direct_client(url: str, **kwargs: Any) -> MeteringClient:
    return MeteringClient(Settings.create(ACCESS_KEY, SECRET_KEY, endpoint_url=url), **kwargs)


def test_given_unprocessed_records_then_they_are_resubmitted_with_backoff_between_rounds(
        metering_emulator: EmulatorServer) -> None:
    metering_emulator.admin.add_fault(type="unprocessed", count=2, operations=["BatchMeterUsage"])
    slept: list[float] = []
    client = direct_client(metering_emulator.url, backoff=Backoff(base=0.01, rand=lambda: 1.0))
    body = {"ProductCode": PRODUCT, "UsageRecords": [{**a_record(), "Timestamp": SESSION_HOUR}]}
    outcome = run_batch(BATCH, client, body, now=time.time(), window_hours=24, out_of_window="skip",
                        sleep=slept.append)
    assert [r.status for r in outcome.results] == ["Success"] and outcome.calls == 3
    assert slept == [0.01, 0.02]


def test_given_request_timeouts_then_the_call_is_retried_and_billed_once(metering_emulator: EmulatorServer) -> None:
    metering_emulator.admin.add_fault(type="requestTimeout", count=2, operations=["BatchMeterUsage"])
    client = direct_client(metering_emulator.url, backoff=Backoff(base=0.001))
    out = run_action("batchMeterUsage", {"ProductCode": PRODUCT, "UsageRecords": [a_record(quantity=6)]},
                     a_config(metering_emulator.url), client=client)["body"]
    assert out["Results"][0]["Status"] == "Success"
    assert [r["quantityDecimal"] for r in billed(metering_emulator)] == ["6"]


def test_given_a_fatal_failure_after_some_records_were_billed_then_the_error_lists_their_ids(
        metering_emulator: EmulatorServer) -> None:
    fixtures = copy.deepcopy(DEFAULT_FIXTURES)
    fixtures["products"][0]["customers"] = [{"customerIdentifier": f"cust-{i:03d}"} for i in range(30)]
    metering_emulator.admin.load_fixtures(fixtures)
    denied = copy.deepcopy(fixtures)
    denied["credentials"][0]["deniedOperations"] = ["BatchMeterUsage"]

    stored: list[dict[str, Any]] = []

    class DeniedAfterFirstCall(MeteringClient):
        def call(self, op: Any, payload: dict[str, Any]) -> Any:
            reply = super().call(op, payload)
            if not stored:  # the policy changes mid-message (loading fixtures forgets the records: keep them)
                stored.extend(billed(metering_emulator))
                metering_emulator.admin.load_fixtures(denied)
            return reply

    client = DeniedAfterFirstCall(Settings.create(ACCESS_KEY, SECRET_KEY, endpoint_url=metering_emulator.url))
    records = [a_record(customer=f"cust-{i:03d}") for i in range(30)]
    with pytest.raises(MeteringError) as failed:
        run_action("batchMeterUsage", {"ProductCode": PRODUCT, "UsageRecords": records},
                   a_config(metering_emulator.url), client=client)
    details = failed.value.error_details
    assert details["code"] == "AccessDeniedException"
    ids = {r["meteringRecordId"] for r in stored}
    assert len(ids) == 25
    assert {r["MeteringRecordId"] for r in details["billedRecords"]} == ids
    assert [r["RecordIndex"] for r in details["billedRecords"]] == list(range(25))
    assert "25 record(s) had been metered" in str(failed.value)


# --- outgoing size limit -----------------------------------------------------------------------------


def test_given_the_outgoing_limit_then_the_body_budget_leaves_room_for_a_passthrough_step(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """(3/4 of the limit - the incoming passthrough - headroom) / 2; a body within 1/16 of the limit fits
    whatever the passthrough holds, so the passthrough is not serialised for it (the usual message)."""
    monkeypatch.setenv("ELASTICIO_OUTGOING_MESSAGE_SIZE_LIMIT", "400000")
    carried = {"step_1": {"body": {"pad": "x" * 100_000}, "headers": {}}}
    size = len(json.dumps(carried, separators=(",", ":")))
    assert summary_budget(None) == (300_000 - 12_500) // 2
    assert summary_budget(carried) == (300_000 - size - 12_500) // 2
    assert summary_budget({"step_1": {"body": {"pad": "x" * 400_000}}}) == 400_000 // 16  # the floor
    unmeasurable = {"step_1": {"body": object()}}  # would raise if serialised
    assert summary_budget(unmeasurable, needed=25_000) == 25_000
    with pytest.raises(TypeError):
        summary_budget(unmeasurable, needed=25_001)


def test_given_a_result_larger_than_the_outgoing_limit_then_it_is_emitted_in_parts_and_nothing_is_lost(
        metering_emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ELASTICIO_OUTGOING_MESSAGE_SIZE_LIMIT", "40000")  # a 14 kB body budget (lib/runner.py)
    fixtures = copy.deepcopy(DEFAULT_FIXTURES)
    fixtures["products"][0]["customers"] = [{"customerIdentifier": f"cust-{i:03d}"} for i in range(200)]
    metering_emulator.admin.load_fixtures(fixtures)
    records = [a_decimal_record(f"{i}.5", customer=f"cust-{i:03d}") for i in range(200)]
    ctx = StepContext()
    returned = run_action("batchMeterUsage", {"ProductCode": PRODUCT, "UsageRecords": records},
                          a_config(metering_emulator.url), ctx=ctx)
    assert returned is None
    parts = [payload["body"] for event, payload in ctx.events if event == "data"]
    assert len(parts) > 1
    assert [p["Part"] for p in parts] == list(range(1, len(parts) + 1))
    assert {p["PartCount"] for p in parts} == {len(parts)}
    assert all(len(json.dumps(p, separators=(",", ":")).encode()) <= (30000 - 1250) // 2 for p in parts)
    results = [r for p in parts for r in p["Results"]]
    assert [r["RecordIndex"] for r in results] == list(range(200))
    assert all(r["Status"] == "Success" and r["MeteringRecordId"] for r in results)
    assert all(p["StatusCounts"]["Success"] == 200 and p["RecordCount"] == 200 for p in parts)
    assert len(billed(metering_emulator)) == 200


def test_given_licenses_of_two_products_in_one_message_then_calls_are_split_until_each_holds_one_product(
        metering_emulator: EmulatorServer) -> None:
    """AWS takes one product per call; a license does not say its product, so a refused mixed call is isolated
    (the emulator answers ValidationException, as a model-constraint error: the model names none)."""
    other = "arn:aws:license-manager::111122223333:license:l-00000000000000000000000000000new"  # another product
    records = [{"Timestamp": hour_start(), "CustomerAWSAccountId": ACCOUNT, "LicenseArn": arn, "Dimension": dimension,
                "QuantityAsDecimal": str(i + 1)}
               for i, (arn, dimension) in enumerate([(LICENSE, "users"), (other, "users"), (LICENSE, "api_calls"),
                                                     (other, "api_calls")])]
    out = run_action("batchMeterUsage", {"UsageRecords": records}, a_config(metering_emulator.url))["body"]
    assert [r["Status"] for r in out["Results"]] == ["Success"] * 4
    stored = {(r["licenseArn"], r["dimension"]): r["quantityDecimal"] for r in billed(metering_emulator)}
    assert stored == {(LICENSE, "users"): "1", (other, "users"): "2", (LICENSE, "api_calls"): "3",
                      (other, "api_calls"): "4"}
