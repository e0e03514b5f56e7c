"""Every body the actions really emit (against the emulator) validates against the out schema the mapping UI
shows, made strict (``additionalProperties: false`` on every object that lists properties): a member the UI
does not list could not be mapped by the next step, and one it lists under another name would map nothing."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from jsonschema import Draft202012Validator, FormatChecker
from metering_emulator.testing import EmulatorServer

from actions import batchMeterUsage as bmu
from lib.schema import json_schema, to_json_schema
from spec.connector.builders import (
    ACCOUNT,
    LICENSE,
    PRODUCT,
    REG_TOKEN,
    StepContext,
    a_config,
    a_record,
    hour_start,
    run_action,
)


def strict(schema: Any) -> Any:
    """``schema`` with ``additionalProperties: false`` on every object schema that lists its properties."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict(v) for k, v in schema.items()}
    if "properties" in out and out.get("type") == "object":
        out.setdefault("additionalProperties", False)
    return out


def check(schema: dict[str, Any], body: Any) -> list[str]:
    v = Draft202012Validator(strict(copy.deepcopy(schema)), format_checker=FormatChecker())
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in v.iter_errors(body)]


def bodies(out: Any, ctx: StepContext) -> list[Any]:
    found = [p["body"] for ev, p in ctx.events if ev == "data"]
    if out is not None:
        found.append(out["body"])
    return found


def emitted(action: str, body: dict[str, Any], cfg: dict[str, Any]) -> list[Any]:
    ctx = StepContext()
    return bodies(run_action(action, body, cfg, ctx=ctx), ctx)


def test_given_legacy_and_license_tokens_then_resolve_customer_emits_only_listed_members(
        metering_emulator: EmulatorServer) -> None:
    token = metering_emulator.admin.mint_token(PRODUCT, {"customerAWSAccountId": ACCOUNT, "licenseArn": LICENSE})
    for b in emitted("resolveCustomer", {"RegistrationToken": token}, a_config(metering_emulator.url)) + \
            emitted("resolveCustomer", {"RegistrationToken": REG_TOKEN}, a_config(metering_emulator.url)):
        assert check(json_schema("resolveCustomer.out.json"), b) == [], b


def test_given_a_call_and_dry_runs_then_meter_usage_emits_only_listed_members(
        metering_emulator: EmulatorServer) -> None:
    cfg = a_config(metering_emulator.url)
    found = emitted("meterUsage", {"ProductCode": PRODUCT, "Timestamp": hour_start(), "UsageDimension": "users",
                                   "UsageQuantityAsDecimal": "2.5", "UsageAllocations": [
                                       {"AllocatedUsageQuantityAsDecimal": "2.5",
                                        "Tags": [{"Key": "k", "Value": "v"}]}]}, cfg)
    found += emitted("meterUsage", {"ProductCode": PRODUCT, "Timestamp": hour_start(), "UsageDimension": "users",
                                    "DryRun": True}, cfg)
    metering_emulator.admin.set_config(refuse_long_term_keys=True)
    found += emitted("meterUsage", {"ProductCode": PRODUCT, "Timestamp": hour_start(), "UsageDimension": "users",
                                    "DryRun": True}, cfg)
    errs = [(b, check(json_schema("meterUsage.out.json"), b)) for b in found]
    assert [e for e in errs if e[1]] == []


def test_given_a_current_and_a_rotated_key_then_register_usage_emits_only_listed_members(
        metering_emulator: EmulatorServer) -> None:
    cfg = a_config(metering_emulator.url)
    found = emitted("registerUsage", {"ProductCode": PRODUCT, "PublicKeyVersion": 1, "Nonce": "n"}, cfg)
    metering_emulator.admin.set_config(public_key_version=2)
    found += emitted("registerUsage", {"ProductCode": PRODUCT, "PublicKeyVersion": 1}, cfg)
    assert any("PublicKeyRotationTimestamp" in b for b in found)
    errs = [(b, check(json_schema("registerUsage.out.json"), b)) for b in found]
    assert [e for e in errs if e[1]] == []


BATCH = {"ProductCode": PRODUCT, "UsageRecords": [
    a_record(), a_record(quantity=2),                           # Success, DuplicateRecord
    a_record(customer="cust-unknown-9999"),                      # CustomerNotSubscribed
    a_record(timestamp=hour_start(-30)),                         # TimestampOutOfBounds (skipped)
    a_record(dimension="no_such_dimension"),                     # Rejected
    {"Timestamp": hour_start(-1) * 1000, "CustomerIdentifier": "cust-demo-0002", "Dimension": "api_calls",
     "QuantityAsDecimal": "3.5", "UsageAllocations": [
         {"AllocatedUsageQuantityAsDecimal": "3", "Tags": [{"Key": "team", "Value": "a"}]},
         {"AllocatedUsageQuantityAsDecimal": "0.5"}]},
]}


@pytest.mark.parametrize("options", [{}, {"sameHourRecords": "sum"}, {"emitPerRecord": True},
                                     {"emitPerRecord": True, "sameHourRecords": "sum"}])
def test_given_each_step_option_then_batch_results_match_the_metadata_the_ui_shows(metering_emulator: EmulatorServer,
                                                       options: dict[str, Any]) -> None:
    cfg = a_config(metering_emulator.url, **options)
    out_schema = to_json_schema(bmu.getMetaModel(cfg)["out"])  # what the UI shows for this step
    found = emitted("batchMeterUsage", copy.deepcopy(BATCH), cfg)
    statuses = {r["Status"] for b in found for r in (b.get("Results") or [b])}
    assert {"Success", "CustomerNotSubscribed", "TimestampOutOfBounds", "Rejected"} <= statuses
    errs = [(b, check(out_schema, b)) for b in found]
    assert [e for e in errs if e[1]] == []


def test_given_license_records_then_the_batch_summary_emits_only_listed_members(
        metering_emulator: EmulatorServer) -> None:
    cfg = a_config(metering_emulator.url)
    found = emitted("batchMeterUsage", {"UsageRecords": [
        {"Timestamp": hour_start(-1), "CustomerAWSAccountId": ACCOUNT, "LicenseArn": LICENSE,
         "Dimension": "users", "Quantity": 3}]}, cfg)
    errs = [(b, check(json_schema("batchMeterUsage.out.json"), b)) for b in found]
    assert [e for e in errs if e[1]] == []


def test_given_parts_and_unprocessed_records_then_every_part_emits_only_listed_members(
        metering_emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ELASTICIO_OUTGOING_MESSAGE_SIZE_LIMIT", "16000")
    metering_emulator.admin.add_fault(type="unprocessed", count=1, operations=["BatchMeterUsage"])
    cfg = a_config(metering_emulator.url)
    records = [a_record(dimension="storage_gb", quantity=i) for i in range(60)]
    for i, r in enumerate(records):
        r["CustomerIdentifier"] = "cust-demo-0001" if i % 2 else "cust-demo-0002"
        r["Timestamp"] = hour_start(-(i % 20) - 1)
    found = emitted("batchMeterUsage", {"ProductCode": PRODUCT, "UsageRecords": records}, cfg)
    assert len(found) > 1 and all("Part" in b for b in found)
    errs = [(b.get("Part"), check(json_schema("batchMeterUsage.out.json"), b)) for b in found]
    assert [e for e in errs if e[1]] == []
