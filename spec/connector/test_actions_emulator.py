"""Every operation end to end against the emulator over real HTTP."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from metering_emulator.testing import EmulatorServer

from actions import registerUsage as register_usage
from lib.errors import MeteringError
from spec.connector.builders import (
    ACCOUNT,
    CUSTOMER,
    LICENSE,
    PRODUCT,
    REG_TOKEN,
    SESSION_TOKEN,
    TEMP_ACCESS_KEY,
    TEMP_SECRET_KEY,
    StepContext,
    a_config,
    a_message,
    a_record,
    hour_start,
    run_action,
)
from spec.support.jsonschema_reference import reference_validator as validator


def b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def test_given_a_valid_meter_usage_when_run_then_the_record_id_is_returned_and_billed_once(
        metering_emulator: EmulatorServer) -> None:
    out = run_action("meterUsage", {"ProductCode": PRODUCT, "Timestamp": hour_start(), "UsageDimension": "users",
                                    "UsageQuantity": 4}, a_config(metering_emulator.url))
    body = out["body"]
    assert not list(validator("meterUsage.out.json").iter_errors(body))
    records = metering_emulator.admin.records()["records"]
    assert [(r["operation"], r["quantity"], r["meteringRecordId"]) for r in records] == [
        ("MeterUsage", 4, body["MeteringRecordId"])]
    assert records[0]["clientToken"] == body["ClientToken"]
    assert body["RequestId"]


def test_given_a_blank_client_token_then_it_is_derived_as_for_an_empty_one(
        metering_emulator: EmulatorServer) -> None:
    """A mapped field that is blank for every message must not become one token shared by all of them."""
    def meter(token: str, message_id: str) -> str:
        out = run_action("meterUsage", {"ProductCode": PRODUCT, "Timestamp": hour_start(), "ClientToken": token,
                                        "UsageDimension": "users", "UsageQuantity": 4},
                         a_config(metering_emulator.url), msg_id=message_id)
        return str(out["body"]["ClientToken"])

    blank, empty = meter("  ", "m-1"), meter("", "m-1")
    assert blank.strip() and blank == empty  # the same message: the same derived token, billed once
    assert meter(" ", "m-2") != blank
    assert [r["clientToken"] for r in metering_emulator.admin.records()["records"]] == [blank]


def test_given_iso_and_millisecond_timestamps_when_metering_then_the_wire_carries_epoch_seconds(
        metering_emulator: EmulatorServer) -> None:
    start = hour_start()
    iso = __import__("datetime").datetime.fromtimestamp(start, __import__("datetime").UTC).strftime(
        "%Y-%m-%dT%H:%M:%S+00:00")
    out = run_action("batchMeterUsage", {"ProductCode": PRODUCT, "UsageRecords": [
        a_record(timestamp=iso), a_record(customer="cust-demo-0002", timestamp=start * 1000 + 999)]},
        a_config(metering_emulator.url))
    assert out["body"]["StatusCounts"]["Success"] == 2
    assert sorted(r["timestamp"] for r in metering_emulator.admin.records()["records"]) == [start, start]


def test_given_an_hours_only_offset_or_an_epoch_text_ending_the_hour_then_the_record_is_billed_in_its_hour(
        metering_emulator: EmulatorServer) -> None:
    import datetime as dt

    start = hour_start(-1)
    postgres = dt.datetime.fromtimestamp(start + 1800, dt.UTC).strftime("%Y-%m-%d %H:%M:%S+00")
    out = run_action("batchMeterUsage", {"ProductCode": PRODUCT, "UsageRecords": [
        a_record(timestamp=postgres), a_record(customer="cust-demo-0002", timestamp=f"{start + 3599}.9999999")]},
        a_config(metering_emulator.url))
    assert out["body"]["StatusCounts"]["Success"] == 2
    assert sorted(r["timestamp"] for r in metering_emulator.admin.records()["records"]) == [start + 1800,
                                                                                           start + 3599]


def test_given_dry_run_when_meter_usage_then_permitted_is_reported_and_nothing_is_recorded(
        metering_emulator: EmulatorServer) -> None:
    out = run_action("meterUsage", {"ProductCode": PRODUCT, "Timestamp": hour_start(), "UsageDimension": "users",
                                    "DryRun": True}, a_config(metering_emulator.url))
    assert out["body"]["DryRun"] is True and out["body"]["DryRunPermitted"] is True
    assert metering_emulator.admin.records()["records"] == []


def test_given_a_dry_run_that_aws_refuses_when_meter_usage_then_its_code_and_reason_are_in_the_output(
        metering_emulator: EmulatorServer) -> None:
    """Long-term access keys are refused for Meter Usage (the model's documentation); the dry run says so,
    with AWS's code and message, instead of a bare "not permitted"."""
    metering_emulator.admin.set_config(refuse_long_term_keys=True)
    out = run_action("meterUsage", {"ProductCode": PRODUCT, "Timestamp": hour_start(), "UsageDimension": "users",
                                    "DryRun": True}, a_config(metering_emulator.url))
    body = out["body"]
    assert body["DryRun"] is True and body["DryRunPermitted"] is False
    assert body["ErrorCode"] == "AccessDeniedException"
    assert "long-term access keys are not supported" in body["ErrorMessage"]
    assert body["RequestId"]
    assert metering_emulator.admin.records()["records"] == []


def test_given_usage_allocations_with_tags_when_metering_then_they_reach_the_service(
        metering_emulator: EmulatorServer) -> None:
    allocations: list[dict[str, Any]] = [{"AllocatedUsageQuantity": 3, "Tags": [{"Key": "env", "Value": "prod"}]},
                   {"AllocatedUsageQuantity": 2}]
    out = run_action("batchMeterUsage", {"ProductCode": PRODUCT, "UsageRecords": [
        dict(a_record(quantity=5), UsageAllocations=allocations)]}, a_config(metering_emulator.url))
    assert out["body"]["AllSucceeded"] is True
    # Sent as the decimal member with the same values (lib/quantity.py): 3 → "3".
    sent = [{"AllocatedUsageQuantityAsDecimal": str(a["AllocatedUsageQuantity"]),
             **({"Tags": a["Tags"]} if "Tags" in a else {})} for a in allocations]
    assert metering_emulator.admin.records()["records"][0]["usageAllocations"] == sent


def test_given_account_id_and_license_records_when_batch_metering_without_product_code_then_success(
        metering_emulator: EmulatorServer) -> None:
    out = run_action("batchMeterUsage", {"UsageRecords": [
        {"Timestamp": hour_start(), "CustomerAWSAccountId": ACCOUNT, "LicenseArn": LICENSE, "Dimension": "api_calls",
         "Quantity": 7}]}, a_config(metering_emulator.url))
    result = out["body"]["Results"][0]
    assert result["Status"] == "Success" and result["UsageRecord"]["LicenseArn"] == LICENSE
    stored = metering_emulator.admin.records()["records"]
    assert [(r["customerAWSAccountId"], r["quantity"]) for r in stored] == [(ACCOUNT, 7)]


def test_given_mixed_customers_when_batch_metering_then_every_status_is_reported_and_none_faked(
        metering_emulator: EmulatorServer) -> None:
    cfg = a_config(metering_emulator.url)
    run_action("batchMeterUsage", {"ProductCode": PRODUCT, "UsageRecords": [a_record(quantity=1)]}, cfg)
    out = run_action("batchMeterUsage", {"ProductCode": PRODUCT, "UsageRecords": [
        a_record(quantity=2),  # same hour, other quantity → DuplicateRecord
        a_record(customer="nobody-at-all"),
        a_record(customer="cust-demo-0002", dimension="storage_gb"),
    ]}, cfg)["body"]
    assert [r["Status"] for r in out["Results"]] == ["DuplicateRecord", "CustomerNotSubscribed", "Success"]
    assert [r["RecordIndex"] for r in out["Results"]] == [0, 1, 2]
    assert out["StatusCounts"] == {"Success": 1, "CustomerNotSubscribed": 1, "DuplicateRecord": 1,
                                   "TimestampOutOfBounds": 0, "Rejected": 0}
    assert out["AllSucceeded"] is False
    assert not list(validator("batchMeterUsage.out.json").iter_errors(out))


def test_given_a_registration_token_when_resolving_then_the_customer_comes_back(
        metering_emulator: EmulatorServer) -> None:
    minted = metering_emulator.admin.mint_token(PRODUCT, {"customerAWSAccountId": ACCOUNT, "licenseArn": LICENSE})
    cfg = a_config(metering_emulator.url)
    legacy = run_action("resolveCustomer", {"RegistrationToken": REG_TOKEN}, cfg)["body"]
    modern = run_action("resolveCustomer", {"RegistrationToken": minted}, cfg)["body"]
    assert (legacy["CustomerIdentifier"], legacy["ProductCode"]) == (CUSTOMER, PRODUCT)
    assert (modern["CustomerAWSAccountId"], modern["LicenseArn"]) == (ACCOUNT, LICENSE)
    assert not list(validator("resolveCustomer.out.json").iter_errors(modern))


def test_given_a_container_product_when_registering_then_the_signed_token_verifies_and_carries_the_nonce(
        metering_emulator: EmulatorServer) -> None:
    out = run_action("registerUsage", {"ProductCode": PRODUCT, "PublicKeyVersion": 1, "Nonce": "n-42"},
                     a_config(metering_emulator.url))["body"]
    header, payload, signature = out["Signature"].split(".")
    key: Any = serialization.load_pem_public_key(metering_emulator.admin.public_key().encode())
    key.verify(b64url(signature), f"{header}.{payload}".encode(),
               padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32), hashes.SHA256())
    claims = json.loads(b64url(payload))
    assert claims["nonce"] == "n-42" and claims["productCode"] == PRODUCT


def test_given_a_whole_public_key_version_written_as_1_0_when_registering_then_it_is_sent_as_the_integer_1(
        metering_emulator: EmulatorServer) -> None:
    """Mapping tools often make 1.0 of a number; JSON Schema counts it an integer, AWS's integer member does not."""
    body = {"ProductCode": PRODUCT, "PublicKeyVersion": 1.0, "Nonce": "n-1"}
    cfg = a_config(metering_emulator.url)
    with pytest.raises(MeteringError) as raised:  # what AWS answers when 1.0 goes out as it is
        run_action("registerUsage", body, cfg)
    assert raised.value.code == "SerializationException"
    message = a_message(body)
    out = register_usage.process(StepContext(), message, cfg, {})
    assert out is not None
    claims = json.loads(b64url(out["body"]["Signature"].split(".")[1]))
    assert claims["publicKeyVersion"] == 1 and claims["nonce"] == "n-1"
    assert message["body"]["PublicKeyVersion"] == 1.0  # the incoming message is left as it was
    fractional = a_message({**body, "PublicKeyVersion": 1.5})
    assert register_usage.whole_key_version(fractional) is fractional  # left for the schema to refuse
    with pytest.raises(MeteringError) as refused:
        register_usage.process(StepContext(), fractional, cfg, {})
    assert refused.value.code == "ValidationFailed"
    assert [(p.path, p.problem) for p in refused.value.problems] == [("/PublicKeyVersion", "must be a whole number")]


def test_given_temporary_credentials_when_calling_then_the_session_token_is_sent_and_accepted(
        metering_emulator: EmulatorServer) -> None:
    cfg = a_config(metering_emulator.url, accessKeyId=TEMP_ACCESS_KEY, secretAccessKey=TEMP_SECRET_KEY,
                   sessionToken=SESSION_TOKEN)
    out = run_action("resolveCustomer", {"RegistrationToken": REG_TOKEN}, cfg)
    assert out["body"]["CustomerIdentifier"] == CUSTOMER
    without = a_config(metering_emulator.url, accessKeyId=TEMP_ACCESS_KEY, secretAccessKey=TEMP_SECRET_KEY)
    with pytest.raises(Exception) as failure:
        run_action("resolveCustomer", {"RegistrationToken": REG_TOKEN}, without)
    assert getattr(failure.value, "code", None) == "UnrecognizedClientException"


def test_given_per_record_mode_when_batch_metering_then_one_message_per_record_is_emitted(
        metering_emulator: EmulatorServer) -> None:
    ctx = StepContext()
    records = [a_record(), a_record(customer="nobody"), a_record(timestamp=hour_start(-30))]
    returned = run_action("batchMeterUsage", {"ProductCode": PRODUCT, "UsageRecords": records},
                          a_config(metering_emulator.url, emitPerRecord=True), ctx=ctx)
    assert returned is None
    assert [e for e, _ in ctx.events] == ["data"] * 3
    bodies = [payload["body"] for _, payload in ctx.events]
    assert [b["Status"] for b in bodies] == ["Success", "CustomerNotSubscribed", "TimestampOutOfBounds"]
    assert bodies[0]["RequestId"] and "MeteringRecordId" not in bodies[2]
    for body in bodies:
        assert not list(validator("batchMeterUsage.record.out.json").iter_errors(body))
