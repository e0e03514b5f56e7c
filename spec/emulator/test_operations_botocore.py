"""The four operations through botocore's real ``meteringmarketplace`` client: success paths and state."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from metering_emulator.testing import EmulatorServer

from spec.emulator.support import (
    DEMO_TOKEN,
    LICENSE_ARN,
    PRODUCT,
    TEMP_ACCESS_KEY,
    TEMP_SECRET_KEY,
    TEMP_TOKEN,
    client,
    now,
)


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def test_given_default_fixtures_when_batch_metering_both_customer_kinds_then_success_and_recorded(
    emu: EmulatorServer,
) -> None:
    ts = now()
    result = client(emu).batch_meter_usage(ProductCode=PRODUCT, UsageRecords=[
        {"Timestamp": ts, "CustomerIdentifier": "cust-demo-0001", "Dimension": "users", "Quantity": 3},
        {"Timestamp": ts, "CustomerAWSAccountId": "111122223333", "LicenseArn": LICENSE_ARN,
         "Dimension": "api_calls", "Quantity": 7},
    ])
    assert [r["Status"] for r in result["Results"]] == ["Success", "Success"]
    assert result["UnprocessedRecords"] == []
    assert result["Results"][0]["UsageRecord"]["Timestamp"].timestamp() == ts
    ids = {r["MeteringRecordId"] for r in result["Results"]}
    assert len(ids) == 2
    records = emu.admin.records()
    assert {r["meteringRecordId"] for r in records["records"]} == ids
    assert sorted((s["customer"], s["dimension"], s["count"], s["quantity"]) for s in records["summary"]) == [
        ("111122223333", "api_calls", 1, 7), ("cust-demo-0001", "users", 1, 3)]
    assert result["ResponseMetadata"]["RequestId"]


def test_given_a_metered_hour_when_the_identical_record_is_resent_then_same_id_and_one_record(
    emu: EmulatorServer,
) -> None:
    c = client(emu)
    record = {"Timestamp": now(), "CustomerIdentifier": "cust-demo-0002", "Dimension": "users", "Quantity": 4}
    first = c.batch_meter_usage(ProductCode=PRODUCT, UsageRecords=[record])["Results"][0]
    again = c.batch_meter_usage(ProductCode=PRODUCT, UsageRecords=[record])["Results"][0]
    assert again["Status"] == "Success"
    assert again["MeteringRecordId"] == first["MeteringRecordId"]
    stored = emu.admin.records()["records"]
    assert len(stored) == 1 and stored[0]["submissions"] == 2


def test_given_a_metered_hour_when_another_quantity_is_sent_then_duplicate_record_and_original_kept(
    emu: EmulatorServer,
) -> None:
    c = client(emu)
    ts = now()
    c.batch_meter_usage(ProductCode=PRODUCT, UsageRecords=[
        {"Timestamp": ts, "CustomerIdentifier": "cust-demo-0002", "Dimension": "users", "Quantity": 4}])
    result = c.batch_meter_usage(ProductCode=PRODUCT, UsageRecords=[
        {"Timestamp": ts, "CustomerIdentifier": "cust-demo-0002", "Dimension": "users", "Quantity": 5}])
    assert result["Results"][0]["Status"] == "DuplicateRecord"
    assert [r["quantity"] for r in emu.admin.records()["records"]] == [4]


def test_given_an_unknown_customer_when_batch_metering_then_customer_not_subscribed_and_nothing_stored(
    emu: EmulatorServer,
) -> None:
    result = client(emu).batch_meter_usage(ProductCode=PRODUCT, UsageRecords=[
        {"Timestamp": now(), "CustomerIdentifier": "cust-nobody", "Dimension": "users", "Quantity": 1}])
    assert result["Results"][0]["Status"] == "CustomerNotSubscribed"
    assert "MeteringRecordId" not in result["Results"][0]
    assert emu.admin.records()["records"] == []


def test_given_an_empty_batch_when_sent_then_empty_results(emu: EmulatorServer) -> None:
    result = client(emu).batch_meter_usage(ProductCode=PRODUCT, UsageRecords=[])
    assert (result["Results"], result["UnprocessedRecords"]) == ([], [])


def test_given_an_entitled_caller_when_meter_usage_is_repeated_in_the_hour_then_same_record_id(
    emu: EmulatorServer,
) -> None:
    c = client(emu)
    ts = now()
    first = c.meter_usage(ProductCode=PRODUCT, Timestamp=ts, UsageDimension="users", UsageQuantity=5,
                          UsageAllocations=[{"AllocatedUsageQuantity": 3, "Tags": [{"Key": "env", "Value": "prod"}]},
                                            {"AllocatedUsageQuantity": 2}])
    second = c.meter_usage(ProductCode=PRODUCT, Timestamp=ts - (ts % 3600), UsageDimension="users",
                           UsageQuantity=5)
    assert first["MeteringRecordId"] == second["MeteringRecordId"]
    stored = emu.admin.records()["records"]
    assert len(stored) == 1
    assert stored[0]["customerAWSAccountId"] == "111122223333"
    assert stored[0]["usageAllocations"][0]["Tags"] == [{"Key": "env", "Value": "prod"}]


def test_given_a_client_token_when_reused_with_the_same_parameters_then_the_original_result(
    emu: EmulatorServer,
) -> None:
    c = client(emu)
    ts = now()
    a = c.meter_usage(ProductCode=PRODUCT, Timestamp=ts, UsageDimension="users", UsageQuantity=1, ClientToken="t-1")
    b = c.meter_usage(ProductCode=PRODUCT, Timestamp=ts, UsageDimension="users", UsageQuantity=1, ClientToken="t-1")
    assert a["MeteringRecordId"] == b["MeteringRecordId"]


def test_given_a_registration_when_register_usage_then_a_ps256_jwt_verifiable_with_the_public_key(
    emu: EmulatorServer,
) -> None:
    token = client(emu).register_usage(ProductCode=PRODUCT, PublicKeyVersion=1, Nonce="nonce-123")["Signature"]
    header_b64, payload_b64, sig_b64 = token.split(".")
    header = json.loads(_b64url_decode(header_b64))
    payload: dict[str, Any] = json.loads(_b64url_decode(payload_b64))
    assert header["alg"] == "PS256" and header["typ"] == "JWT"
    assert payload["productCode"] == PRODUCT and payload["nonce"] == "nonce-123"
    assert payload["publicKeyVersion"] == 1 and abs(payload["iat"] - now()) < 60
    key = serialization.load_pem_public_key(emu.admin.public_key().encode())
    assert isinstance(key, rsa.RSAPublicKey)
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
    key.verify(_b64url_decode(sig_b64), f"{header_b64}.{payload_b64}".encode(), pss, hashes.SHA256())
    with pytest.raises(InvalidSignature):
        key.verify(_b64url_decode(sig_b64), f"{header_b64}.{payload_b64}x".encode(), pss, hashes.SHA256())


def test_given_the_demo_token_when_resolved_twice_then_the_same_customer(emu: EmulatorServer) -> None:
    c = client(emu)
    first = c.resolve_customer(RegistrationToken=DEMO_TOKEN)
    second = c.resolve_customer(RegistrationToken=DEMO_TOKEN)
    assert first["CustomerIdentifier"] == second["CustomerIdentifier"] == "cust-demo-0001"
    assert first["ProductCode"] == PRODUCT


def test_given_a_minted_token_when_resolved_then_the_minted_customer(emu: EmulatorServer) -> None:
    token = emu.admin.mint_token(PRODUCT, {"customerAWSAccountId": "111122223333", "licenseArn": LICENSE_ARN})
    result = client(emu).resolve_customer(RegistrationToken=token)
    assert (result["CustomerAWSAccountId"], result["LicenseArn"]) == ("111122223333", LICENSE_ARN)
    assert "CustomerIdentifier" not in result


def test_given_temporary_credentials_when_signed_with_the_session_token_then_accepted(
    emu: EmulatorServer,
) -> None:
    c = client(emu, access_key=TEMP_ACCESS_KEY, secret_key=TEMP_SECRET_KEY, token=TEMP_TOKEN)
    assert c.resolve_customer(RegistrationToken=DEMO_TOKEN)["ProductCode"] == PRODUCT
