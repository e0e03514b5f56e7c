"""The shortcuts of the per-message path answer exactly what the general code they stand for answers.

Each Batch Meter Usage message goes through a few fast paths (lib/batch.py, lib/quantity.py, lib/schema.py,
lib/jsontext.py): AWS's answer paired with the records in the order sent, the billed quantity read off the
decimal text, timestamps converted along the schema's paths only, orjson for the JSON texts. Each is
checked here against the slow, general form it replaces, on generated inputs.
"""

from __future__ import annotations

import copy
import json
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from metering_emulator.testing import EmulatorServer

from lib import jsontext, quantity
from lib.batch import MONTH_END_GRACE, BatchOutcome, RecordResult, _same, earliest_accepted, match_key, month_start
from lib.client import MeteringClient, Settings
from lib.errors import Problem
from lib.operations import OPERATIONS
from lib.resilience import Pacer
from lib.runner import batch_summary, run
from lib.schema import iso_utc, json_schema, timestamps_to_epoch
from lib.validation import problems
from spec.connector.builders import PRODUCT, SESSION_HOUR, StepContext, a_config, a_message
from spec.connector.scripted import Canned, ScriptedServer

BATCH = OPERATIONS["batchMeterUsage"]
HOUR = 1_765_105_200  # 2025-12-07T11:00:00Z

decimal_texts = st.from_regex(quantity.DECIMAL_PATTERN, fullmatch=True)


# -- the echo pairing -----------------------------------------------------------------------------------

def _wire(customer: str, dimension: str, timestamp: int, text: str) -> dict[str, Any]:
    return {"Timestamp": timestamp, "CustomerIdentifier": customer, "Dimension": dimension,
            "QuantityAsDecimal": text}


echo_changes = st.sampled_from([
    "verbatim", "other decimal text", "Quantity 0 added", "float timestamp", "fractional timestamp",
    "ISO timestamp", "other dimension", "other customer", "other quantity", "empty account member",
    "no quantity", "quantity as whole number"])


@given(st.sampled_from(["cust-1", "cust-2"]), st.sampled_from(["users", "api"]), decimal_texts, echo_changes)
@settings(max_examples=400, deadline=None)
def test_given_any_echo_then_the_quick_comparison_agrees_with_the_match_keys(
        customer: str, dimension: str, text: str, change: str) -> None:
    wire = _wire(customer, dimension, HOUR, text)
    echo: dict[str, Any] = dict(wire)
    if change == "other decimal text":
        echo["QuantityAsDecimal"] = text + ".000" if "." not in text else text + "0"
    elif change == "Quantity 0 added":
        echo["Quantity"] = 0
    elif change == "float timestamp":
        echo["Timestamp"] = float(HOUR)
    elif change == "fractional timestamp":
        echo["Timestamp"] = HOUR + 0.5
    elif change == "ISO timestamp":
        echo["Timestamp"] = iso_utc(HOUR)
    elif change == "other dimension":
        echo["Dimension"] = dimension + "x"
    elif change == "other customer":
        echo["CustomerIdentifier"] = customer + "x"
    elif change == "other quantity":
        echo["QuantityAsDecimal"] = str(Decimal(text) + 1)
    elif change == "empty account member":
        echo["CustomerAWSAccountId"] = ""
    elif change == "no quantity":
        del echo["QuantityAsDecimal"]
    elif change == "quantity as whole number":
        del echo["QuantityAsDecimal"]
        echo["Quantity"] = int(Decimal(text)) if Decimal(text) == int(Decimal(text)) else 1
    assert _same(wire, echo) == (match_key(wire) == match_key(echo))


def _results(records: list[dict[str, Any]], order: list[int]) -> bytes:
    return json.dumps({"Results": [
        {"UsageRecord": records[i], "Status": "Success", "MeteringRecordId": f"id-{records[i]['Dimension']}"}
        for i in order], "UnprocessedRecords": []}).encode()


def _outcome(replies: list[Canned], body: dict[str, Any]) -> tuple[dict[str, Any], int]:
    with ScriptedServer(replies) as server:
        settings = Settings.from_cfg(a_config(server.url))
        client = MeteringClient(settings, pacer_for=lambda op: Pacer(1000.0))
        try:
            out = run(BATCH, StepContext(), a_message(body), a_config(server.url), client=client)
        finally:
            client.close()
        assert out is not None
        return out["body"], len(server.requests)


def test_given_answers_in_another_order_or_missing_then_every_record_gets_its_own_result() -> None:
    records = [_wire("cust-1", f"dim-{i}", SESSION_HOUR, str(i)) for i in range(6)]
    body = {"ProductCode": PRODUCT, "UsageRecords": [
        {**{k: v for k, v in r.items() if k != "QuantityAsDecimal"}, "Quantity": i} for i, r in enumerate(records)]}
    headers = {"Content-Type": "application/x-amz-json-1.1", "x-amzn-RequestId": "req-1"}
    in_order, calls = _outcome([Canned(200, _results(records, list(range(6))), headers)], copy.deepcopy(body))
    assert calls == 1
    reversed_, calls = _outcome([Canned(200, _results(records, [5, 4, 3, 2, 1, 0]), headers)], copy.deepcopy(body))
    assert calls == 1
    assert reversed_ == in_order
    # Two answered now, the rest in a second call: those are sent again, and paired there.
    first = Canned(200, _results(records, [3, 1]), headers)
    second = Canned(200, _results(records, [0, 2, 4, 5]), headers)
    split, calls = _outcome([first, second], copy.deepcopy(body))
    assert calls == 2
    assert [r["MeteringRecordId"] for r in split["Results"]] == [f"id-dim-{i}" for i in range(6)]
    assert {k: v for k, v in split.items() if k != "RequestIds"} == {
        k: v for k, v in in_order.items() if k != "RequestIds"}


# -- the window's lower bound, asked before every call ---------------------------------------------------

def _earliest_in_full(now: float, hours: int) -> int:
    """The rule spelled out: less than ``hours`` old; from 06:00 UTC on the 1st, nothing of the month before."""
    earliest = int(now // 1) - hours * 3600 + 1
    start = month_start(now)
    return max(earliest, start) if now >= start + MONTH_END_GRACE else earliest


# Times around month starts and cut-offs: 2024-02-01, 2024-03-01 (after 29 days), 2027-01-01 (a new year), 2027-02-01.
_edges = [month_start(m) + offset for m in (1_706_745_600, 1_709_251_200, 1_798_761_600, 1_801_440_000)
          for offset in (-1, 0, 1, MONTH_END_GRACE - 1, MONTH_END_GRACE, MONTH_END_GRACE + 1)]


@given(st.lists(st.sampled_from(_edges) | st.floats(min_value=1.7e9, max_value=1.9e9), min_size=1, max_size=30),
       st.sampled_from([6, 24]))
@settings(max_examples=300)
def test_given_times_in_any_order_then_the_cached_lower_bound_is_the_rule_in_full(
        times: list[float], hours: int) -> None:
    for now in times:
        assert earliest_accepted(now, hours) == _earliest_in_full(now, hours)
        assert earliest_accepted(now + 0.5, hours) == _earliest_in_full(now + 0.5, hours)


# -- quantities -------------------------------------------------------------------------------------------

@given(decimal_texts)
def test_given_a_decimal_text_then_its_canonical_form_is_the_rendered_decimal(text: str) -> None:
    assert quantity.canonical(text) == quantity.render(Decimal(text))


@given(st.integers(min_value=0, max_value=2**31 - 1))
def test_given_a_whole_quantity_then_its_wire_text_is_the_rendered_decimal(value: int) -> None:
    wire = quantity.to_wire({"Dimension": "d", "Quantity": value}, quantity.RECORD)
    assert wire == {"Dimension": "d", "QuantityAsDecimal": quantity.render(Decimal(value))}


def test_given_a_text_outside_the_decimal_form_then_canonical_still_renders_it() -> None:
    assert quantity.canonical("1E+3") == "1000"
    assert quantity.canonical("007.50") == "7.5"


# -- JSON texts -------------------------------------------------------------------------------------------

json_data = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-2**63, max_value=2**63 - 1) | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5), max_leaves=30)


@given(json_data)
@settings(max_examples=300)
def test_given_json_data_without_floats_then_the_text_is_the_standard_librarys(value: Any) -> None:
    try:
        expected = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: neither library can write them as UTF-8
        return
    assert jsontext.dumps(value) == expected
    assert jsontext.size(value) == len(expected)
    assert jsontext.loads(expected) == value


def test_given_what_orjson_refuses_then_the_standard_library_writes_it() -> None:
    assert jsontext.dumps({"big": 2**70}) == b'{"big":1180591620717411303424}'
    assert jsontext.dumps({1: "a"}) == b'{"1":"a"}'


# -- timestamps -------------------------------------------------------------------------------------------

@given(st.lists(st.sampled_from([HOUR, HOUR * 1000, str(HOUR), iso_utc(HOUR), "2025-12-07T12:00:00+01:00",
                                 float(HOUR) + 0.9]), min_size=1, max_size=8))
def test_given_any_timestamp_form_then_the_wire_copy_has_epoch_seconds_and_the_message_is_untouched(
        stamps: list[Any]) -> None:
    body = {"ProductCode": PRODUCT, "UsageRecords": [
        {"Timestamp": stamp, "CustomerIdentifier": "c", "Dimension": "d", "Quantity": 1,
         "UsageAllocations": [{"AllocatedUsageQuantity": 1, "Tags": [{"Key": "k", "Value": "v"}]}]}
        for stamp in stamps]}
    before = copy.deepcopy(body)
    wire = timestamps_to_epoch(json_schema(BATCH.in_schema), body)
    assert body == before
    assert [r["Timestamp"] for r in wire["UsageRecords"]] == [HOUR] * len(stamps)
    assert all(w is not r for w, r in zip(wire["UsageRecords"], body["UsageRecords"], strict=True))
    assert wire["UsageRecords"] is not body["UsageRecords"]


def test_given_a_message_then_running_it_leaves_its_body_as_it_came(metering_emulator: EmulatorServer) -> None:
    body = {"ProductCode": PRODUCT, "UsageRecords": [
        {"Timestamp": iso_utc(SESSION_HOUR), "CustomerIdentifier": "cust-demo-0001", "Dimension": "users",
         "Quantity": 3, "UsageAllocations": [{"AllocatedUsageQuantity": 3}]},
        {"Timestamp": SESSION_HOUR * 1000, "CustomerIdentifier": "cust-demo-0002", "Dimension": "users",
         "QuantityAsDecimal": "2.50"}]}
    msg = a_message(body)
    before = copy.deepcopy(msg)
    out = run(BATCH, StepContext(), msg, a_config(metering_emulator.url))
    assert msg == before
    assert out is not None
    assert out["body"]["AllSucceeded"] and out["body"]["Results"][1]["BilledQuantity"] == "2.5"


def test_given_a_summary_then_its_timestamps_are_iso_and_the_records_are_copies() -> None:
    record = {"Timestamp": HOUR, "CustomerIdentifier": "c", "Dimension": "d", "Quantity": 1}
    outcome = BatchOutcome([RecordResult(0, record, "Success", "id-1", "req", None, None, "1")])
    summary = batch_summary(BATCH, outcome)
    assert summary["Results"][0]["UsageRecord"]["Timestamp"] == iso_utc(HOUR)
    assert record["Timestamp"] == HOUR


def test_given_a_timestamp_integer_of_any_length_then_it_is_a_problem_named_not_a_crash() -> None:
    body = {"ProductCode": PRODUCT, "UsageRecords": [
        {"Timestamp": 10**400, "CustomerIdentifier": "c", "Dimension": "d", "Quantity": 1}]}
    assert problems(BATCH.in_schema, body) == [Problem(
        "/UsageRecords/0/Timestamp", "must be ISO-8601 with an offset or Z, epoch seconds or epoch milliseconds")]
