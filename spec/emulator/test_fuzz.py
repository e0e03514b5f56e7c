"""Hypothesis fuzzing of bodies, headers and the admin API: every bad request gets a well-formed AWS error,
the server keeps serving, and rejected requests leave the stored records unchanged."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from metering_emulator.testing import EmulatorServer

from spec.emulator.support import PRODUCT, Reply, send, signed

FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
OPERATIONS = ["BatchMeterUsage", "MeterUsage", "RegisterUsage", "ResolveCustomer"]
ERROR_STATUSES = {400, 403, 404, 405, 409, 411, 412, 413, 500}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**64), max_value=2**64)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)


@pytest.fixture(scope="module")
def fuzz_emu() -> Iterator[EmulatorServer]:
    with EmulatorServer(quotas=False) as emu:
        yield emu


def _stored(emu: EmulatorServer) -> list[tuple[str, int]]:
    return [(r["meteringRecordId"], r["quantity"]) for r in emu.admin.records()["records"]]


def _assert_well_formed(reply: Reply) -> None:
    assert reply.headers.get("x-amzn-requestid")
    assert reply.headers.get("content-type") == "application/x-amz-json-1.1"
    body = reply.json()
    assert isinstance(body, dict)
    if reply.status != 200:
        assert reply.status in ERROR_STATUSES, reply.status
        assert isinstance(body.get("__type"), str) and body["__type"]
        assert isinstance(body.get("message"), str)
        assert reply.headers.get("x-amzn-errortype") == body["__type"]
        assert reply.status != 500, body  # no fault is armed here, so a 500 would be an emulator bug


def _valid_body(operation: str) -> dict[str, Any]:
    now = int(time.time())
    bodies: dict[str, dict[str, Any]] = {
        "MeterUsage": {"ProductCode": PRODUCT, "Timestamp": now, "UsageDimension": "users", "UsageQuantity": 1,
                       "UsageAllocations": [{"AllocatedUsageQuantity": 1, "Tags": [{"Key": "k", "Value": "v"}]}]},
        "BatchMeterUsage": {"ProductCode": PRODUCT, "UsageRecords": [
            {"Timestamp": now, "CustomerIdentifier": "cust-demo-0001", "Dimension": "users", "Quantity": 1,
             "UsageAllocations": [{"AllocatedUsageQuantity": 1}]}]},
        "RegisterUsage": {"ProductCode": PRODUCT, "PublicKeyVersion": 1, "Nonce": "n"},
        "ResolveCustomer": {"RegistrationToken": "emu-demo-registration-token-0001"},
    }
    return bodies[operation]


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*prefix, i))
    return out


def _replace(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    copy = json.loads(json.dumps(value))
    target = copy
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = new
    return copy


@FUZZ
@given(operation=st.sampled_from(OPERATIONS), data=st.data(), replacement=json_values)
def test_given_a_valid_body_with_one_member_replaced_then_a_well_formed_reply(
    fuzz_emu: EmulatorServer, operation: str, data: st.DataObject, replacement: Any
) -> None:
    body = _valid_body(operation)
    path = data.draw(st.sampled_from(_paths(body)))
    mutated = _replace(body, path, replacement)
    before = _stored(fuzz_emu)
    reply = signed(fuzz_emu, operation, mutated)
    _assert_well_formed(reply)
    if reply.status != 200:
        assert _stored(fuzz_emu) == before


@FUZZ
@given(operation=st.sampled_from(OPERATIONS), body=json_values)
def test_given_any_json_body_then_a_well_formed_reply(fuzz_emu: EmulatorServer, operation: str, body: Any) -> None:
    before = _stored(fuzz_emu)
    reply = signed(fuzz_emu, operation, body)
    _assert_well_formed(reply)
    if reply.status != 200:
        assert _stored(fuzz_emu) == before


@FUZZ
@given(operation=st.sampled_from(OPERATIONS), raw=st.binary(max_size=200))
def test_given_arbitrary_bytes_then_a_well_formed_error(fuzz_emu: EmulatorServer, operation: str, raw: bytes) -> None:
    before = _stored(fuzz_emu)
    reply = signed(fuzz_emu, operation, raw)
    _assert_well_formed(reply)
    try:
        parsed = json.loads(raw.decode("utf-8"))
        is_object = isinstance(parsed, dict)
    except ValueError:
        is_object = False
    if not is_object and raw.strip():
        assert reply.error_type == "SerializationException"
    assert _stored(fuzz_emu) == before


header_names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-ABCXYZ0123456789", min_size=1, max_size=20).filter(
    lambda n: n.lower() not in {"host", "content-length", "content-type", "x-amz-date", "x-amz-target",
                                "authorization", "x-amz-security-token", "transfer-encoding", "connection",
                                "expect"})
header_values = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40)


@FUZZ
@given(extra=st.dictionaries(header_names, header_values, max_size=5))
def test_given_unsigned_extra_headers_then_the_signature_still_verifies(
    fuzz_emu: EmulatorServer, extra: dict[str, str]
) -> None:
    reply = signed(fuzz_emu, "ResolveCustomer", {"RegistrationToken": "emu-demo-registration-token-0001"},
                   extra=extra)
    _assert_well_formed(reply)
    assert reply.status == 200, reply.body


@FUZZ
@given(name=st.sampled_from(["X-Amz-Target", "X-Amz-Date", "Content-Type", "Authorization", "Host"]),
       value=header_values)
def test_given_a_signed_header_changed_after_signing_then_a_well_formed_error(
    fuzz_emu: EmulatorServer, name: str, value: str
) -> None:
    before = _stored(fuzz_emu)
    reply = signed(fuzz_emu, "MeterUsage", _valid_body("MeterUsage"), extra={name: value})
    _assert_well_formed(reply)
    assert reply.status != 200
    assert _stored(fuzz_emu) == before


@FUZZ
@given(target=header_values)
def test_given_any_target_then_a_well_formed_reply(fuzz_emu: EmulatorServer, target: str) -> None:
    reply = signed(fuzz_emu, None, {}, target=target)
    _assert_well_formed(reply)
    if target.strip() not in {f"AWSMPMeteringService.{op}" for op in OPERATIONS}:
        assert reply.error_type == "UnknownOperationException"


ADMIN_NAMES = ["health", "fixtures", "registration-tokens", "records", "stats", "faults", "config", "public-key",
               "nope", "", "records/x"]


@FUZZ
@given(method=st.sampled_from(["GET", "POST", "DELETE", "PUT", "PATCH"]), name=st.sampled_from(ADMIN_NAMES),
       body=json_values, query=st.sampled_from(["", "id=x", "id=99", "productCode=%ZZ", "a=b&a=c"]))
def test_given_fuzzed_admin_requests_then_json_replies_and_errors_change_nothing(
    fuzz_emu: EmulatorServer, method: str, name: str, body: Any, query: str
) -> None:
    before = (_stored(fuzz_emu), fuzz_emu.admin.config(), fuzz_emu.admin.fixtures())
    path = f"/_emulator/{name}" + (f"?{query}" if query else "")
    reply = send(fuzz_emu, method, path, json.dumps(body).encode(), {"Content-Type": "application/json"})
    assert reply.headers.get("x-amzn-requestid")
    payload = reply.json()
    if reply.status >= 300:
        assert reply.status in ERROR_STATUSES and reply.status != 500, payload
        assert isinstance(payload["__type"], str) and isinstance(payload["message"], str)
        assert (_stored(fuzz_emu), fuzz_emu.admin.config(), fuzz_emu.admin.fixtures()) == before
    fuzz_emu.admin.reset()
    assert fuzz_emu.admin.health()["status"] == "ok"


# -- a positive property with an independent oracle --------------------------------------------------------

records_strategy = st.lists(
    st.tuples(st.sampled_from(["cust-demo-0001", "cust-demo-0002", "cust-unknown"]),
              st.sampled_from(["users", "api_calls", "storage_gb"]),
              st.integers(min_value=0, max_value=5), st.integers(min_value=0, max_value=3)),
    max_size=25,
)


@settings(max_examples=60, deadline=None)
@given(batch1=records_strategy, batch2=records_strategy)
def test_given_random_batches_then_statuses_and_totals_follow_first_quantity_wins(
    fuzz_emu: EmulatorServer, batch1: list[tuple[str, str, int, int]], batch2: list[tuple[str, str, int, int]]
) -> None:
    fuzz_emu.admin.reset()
    base = (int(time.time()) // 3600) * 3600
    kept: dict[tuple[str, str, int], int] = {}
    for batch in (batch1, batch2):
        records = [{"Timestamp": base - hours * 3600 + 5, "CustomerIdentifier": c, "Dimension": d, "Quantity": q}
                   for c, d, hours, q in batch]
        reply = signed(fuzz_emu, "BatchMeterUsage", {"ProductCode": PRODUCT, "UsageRecords": records})
        assert reply.status == 200, reply.body
        expected = []
        for c, d, hours, q in batch:
            if c == "cust-unknown":
                expected.append("CustomerNotSubscribed")
                continue
            first = kept.setdefault((c, d, hours), q)
            expected.append("Success" if first == q else "DuplicateRecord")
        assert [r["Status"] for r in reply.json()["Results"]] == expected
    summary = fuzz_emu.admin.records()["summary"]
    assert sum(s["quantity"] for s in summary) == sum(kept.values())
    assert sum(s["count"] for s in summary) == len(kept)


decimal_texts = st.builds(
    lambda whole, frac: f"{whole}.{frac}" if frac else str(whole),
    st.integers(min_value=0, max_value=99999), st.sampled_from(["", "1", "25", "000001", "999999", "5", "10"]))


@settings(max_examples=60, deadline=None)
@given(parts=st.lists(decimal_texts, min_size=1, max_size=6), off_by=st.sampled_from(["0", "0.000001", "1"]))
def test_given_random_decimal_allocations_then_only_exact_sums_are_accepted_and_billed_exactly(
    fuzz_emu: EmulatorServer, parts: list[str], off_by: str
) -> None:
    from decimal import Decimal

    fuzz_emu.admin.reset()
    total = sum((Decimal(p) for p in parts), Decimal(0)) + Decimal(off_by)
    text = format(total, "f")
    allocations = [{"AllocatedUsageQuantityAsDecimal": p, "Tags": [{"Key": "part", "Value": str(i)}]}
                   for i, p in enumerate(parts)]
    record = {"Timestamp": int(time.time()), "CustomerIdentifier": "cust-demo-0001", "Dimension": "users",
              "QuantityAsDecimal": text, "UsageAllocations": allocations}
    reply = signed(fuzz_emu, "BatchMeterUsage", {"ProductCode": PRODUCT, "UsageRecords": [record]})
    stored = fuzz_emu.admin.records()["records"]
    if off_by == "0":
        assert reply.status == 200, reply.body
        assert [Decimal(r["quantityDecimal"]) for r in stored] == [total]
    else:
        assert reply.error_type == "InvalidUsageAllocationsException", reply.body
        assert stored == []
