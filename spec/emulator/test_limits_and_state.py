"""Size limits, first-call-only entitlement, token lifetime, admin round trips and thread safety."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from botocore.exceptions import ClientError
from metering_emulator.testing import AdminError, EmulatorServer

from spec.emulator.support import DEMO_TOKEN, PRODUCT, client, now, signed


def test_given_a_body_over_one_megabyte_then_validation_exception_and_nothing_stored(emu: EmulatorServer) -> None:
    body = {"ProductCode": PRODUCT, "UsageRecords": [], "Padding": "x" * (1024 * 1024)}
    reply = signed(emu, "BatchMeterUsage", body)
    assert (reply.status, reply.error_type) == (400, "ValidationException")
    assert "1 MB" in reply.json()["message"]


def _padded(size: int) -> bytes:
    """A valid BatchMeterUsage body of exactly ``size`` bytes (JSON whitespace before the closing brace)."""
    record = {"Timestamp": now(), "CustomerIdentifier": "cust-demo-0001", "Dimension": "users",
              "QuantityAsDecimal": "1"}
    text = json.dumps({"ProductCode": PRODUCT, "UsageRecords": [record]})
    return (text[:-1] + " " * (size - len(text)) + "}").encode()


def test_given_a_body_of_1_000_000_bytes_then_refused_and_one_byte_less_billed(emu: EmulatorServer) -> None:
    """Model: "each request must be less than 1 MB in size", read as 1,000,000 bytes (the stricter reading)."""
    refused = signed(emu, "BatchMeterUsage", _padded(1_000_000))
    assert (refused.status, refused.error_type) == (400, "ValidationException")
    assert emu.admin.records()["records"] == []
    taken = signed(emu, "BatchMeterUsage", _padded(999_999))
    assert taken.status == 200 and taken.json()["Results"][0]["Status"] == "Success"


def test_given_2500_allocations_with_unique_tags_then_accepted_and_2501_refused(emu: EmulatorServer) -> None:
    allocations = [{"AllocatedUsageQuantity": 1, "Tags": [{"Key": "shard", "Value": str(i)}]} for i in range(2500)]
    c = client(emu)
    record_id = c.meter_usage(ProductCode=PRODUCT, Timestamp=now(), UsageDimension="users", UsageQuantity=2500,
                              UsageAllocations=allocations)["MeteringRecordId"]
    assert emu.admin.records()["records"][0]["meteringRecordId"] == record_id
    allocations.append({"AllocatedUsageQuantity": 1})
    with pytest.raises(ClientError) as info:
        c.meter_usage(ProductCode=PRODUCT, Timestamp=now(), UsageDimension="api_calls", UsageQuantity=2501,
                      UsageAllocations=allocations)
    assert info.value.response["Error"]["Code"] == "ValidationException"
    assert "Member must have length less than or equal to 2500" in info.value.response["Error"]["Message"]


def test_given_a_registered_task_when_its_subscription_ends_then_later_calls_still_succeed() -> None:
    fixtures: dict[str, Any] = {
        "credentials": [{"accessKeyId": "ASIATASK000000000001", "secretAccessKey": "task/one",
                         "accountId": "111122223333"}],
        "products": [{"productCode": PRODUCT, "dimensions": ["users"],
                      "customers": [{"customerAWSAccountId": "111122223333"}]}],
    }
    with EmulatorServer(fixtures=fixtures, quotas=False) as emu:
        c = client(emu, access_key="ASIATASK000000000001", secret_key="task/one")
        assert c.register_usage(ProductCode=PRODUCT, PublicKeyVersion=1)["Signature"]
        product = emu.state.fixtures.products[PRODUCT]
        with emu.state.lock:
            product.by_account.clear()  # the buyer unsubscribes after the task registered
        assert c.register_usage(ProductCode=PRODUCT, PublicKeyVersion=1, Nonce="again")["Signature"]
        with pytest.raises(c.exceptions.CustomerNotEntitledException):
            c.meter_usage(ProductCode=PRODUCT, Timestamp=now(), UsageDimension="users")


def test_given_a_resolved_token_when_its_lifetime_is_over_then_expired(emu: EmulatorServer) -> None:
    c = client(emu)
    token = emu.admin.mint_token(PRODUCT, {"customerIdentifier": "cust-demo-0002"})
    assert c.resolve_customer(RegistrationToken=token)["CustomerIdentifier"] == "cust-demo-0002"
    assert c.resolve_customer(RegistrationToken=token)["CustomerIdentifier"] == "cust-demo-0002"
    emu.admin.set_config(token_lifetime_seconds=0)
    with pytest.raises(c.exceptions.ExpiredTokenException):
        c.resolve_customer(RegistrationToken=token)
    with pytest.raises(c.exceptions.InvalidTokenException):
        c.resolve_customer(RegistrationToken=token + "x")


def test_given_minted_tokens_then_they_look_like_real_ones_and_are_unique(emu: EmulatorServer) -> None:
    tokens = {emu.admin.mint_token(PRODUCT, {"customerIdentifier": "cust-demo-0001"}) for _ in range(20)}
    assert len(tokens) == 20
    assert all("+" in t and t.endswith("==") for t in tokens)


def test_given_new_fixtures_when_loaded_then_old_credentials_stop_working_and_reset_restores_them(
    emu: EmulatorServer,
) -> None:
    emu.admin.load_fixtures({"credentials": [{"accessKeyId": "AKIAOTHER00000000001", "secretAccessKey": "s"}],
                             "products": [{"productCode": "p2", "dimensions": ["d"], "customers": []}]})
    with pytest.raises(ClientError) as info:
        client(emu).resolve_customer(RegistrationToken=DEMO_TOKEN)
    assert info.value.response["Error"]["Code"] == "UnrecognizedClientException"
    assert client(emu, access_key="AKIAOTHER00000000001", secret_key="s").batch_meter_usage(
        ProductCode="p2", UsageRecords=[])["Results"] == []
    emu.admin.reset()
    assert client(emu).resolve_customer(RegistrationToken=DEMO_TOKEN)["ProductCode"] == PRODUCT


@pytest.mark.parametrize("fixtures", [
    [], {"credentials": "x"}, {"products": [{"productCode": "p", "dimensions": [1]}]},
    {"registrationTokens": [{"token": "t", "productCode": "missing", "customer": {"customerIdentifier": "c"}}]},
    {"credentials": [{"accessKeyId": "A"}]}, {"surprise": 1},
])
def test_given_bad_fixtures_then_the_admin_api_refuses_them_and_keeps_the_old_ones(
    emu: EmulatorServer, fixtures: Any
) -> None:
    before = emu.admin.fixtures()
    with pytest.raises(AdminError) as info:
        emu.admin.load_fixtures(fixtures)
    assert info.value.status == 400 and info.value.body["__type"] == "ValidationException"
    assert emu.admin.fixtures() == before


def test_given_fixtures_then_secrets_never_appear_in_admin_replies(emu: EmulatorServer) -> None:
    replies = json.dumps([emu.admin.fixtures(), emu.admin.config(), emu.admin.stats(), emu.admin.health()])
    for secret in ("emulator/Secret+Key/DoNotUseInProduction00", "emulator/Temp+Secret/DoNotUseInProduction0",
                   "emulator-session-token-0000000000000000"):
        assert secret not in replies
    assert "AKIAEMULATOR0000TEST" in replies


@pytest.mark.parametrize("changes", [{"quotas": "yes"}, {"bogus": 1}, {"timestampWindowHours": -1},
                                     {"region": ""}, {"publicKeyVersion": 0}, {"disabledOperations": ["Nope"]},
                                     {"disabledOperations": ["MeterUsage"]}])
def test_given_bad_config_then_refused_and_unchanged(emu: EmulatorServer, changes: dict[str, Any]) -> None:
    before = emu.admin.config()
    with pytest.raises(AdminError) as info:
        emu.admin.call("POST", "config", changes)
    assert info.value.status == 400
    assert emu.admin.config() == before


@pytest.mark.parametrize(("method", "name", "status"), [("GET", "nope", 404), ("DELETE", "records", 405),
                                                        ("PUT", "reset", 405)])
def test_given_unknown_admin_routes_then_aws_style_errors(emu: EmulatorServer, method: str, name: str,
                                                          status: int) -> None:
    with pytest.raises(AdminError) as info:
        emu.admin.call(method, name)
    assert info.value.status == status and isinstance(info.value.body["message"], str)


def test_given_a_fault_id_when_deleted_then_only_that_fault_goes(emu: EmulatorServer) -> None:
    first = emu.admin.add_fault(type="throttle", operations=["MeterUsage"])
    emu.admin.add_fault(type="error500", operations=["RegisterUsage"])
    emu.admin.call("DELETE", "faults", query=f"id={first['id']}")
    assert [f["type"] for f in emu.admin.faults()] == ["error500"]
    with pytest.raises(AdminError) as info:
        emu.admin.call("DELETE", "faults", query="id=999")
    assert info.value.status == 404


def test_given_records_filters_then_only_matching_records(emu: EmulatorServer) -> None:
    client(emu).batch_meter_usage(ProductCode=PRODUCT, UsageRecords=[
        {"Timestamp": now(), "CustomerIdentifier": "cust-demo-0001", "Dimension": "users", "Quantity": 1},
        {"Timestamp": now(), "CustomerIdentifier": "cust-demo-0002", "Dimension": "api_calls", "Quantity": 2}])
    only = emu.admin.records(customer="cust-demo-0002")
    assert [r["dimension"] for r in only["records"]] == ["api_calls"]
    assert [s["quantity"] for s in only["summary"]] == [2]
    assert emu.admin.records(dimension="users")["records"][0]["customerIdentifier"] == "cust-demo-0001"


def test_given_concurrent_clients_then_every_record_and_call_is_counted_once(emu: EmulatorServer) -> None:
    fixtures: dict[str, Any] = {
        "credentials": [{"accessKeyId": "AKIACONCURRENT000001", "secretAccessKey": "c/s"}],
        "products": [{"productCode": "conc", "dimensions": ["d"],
                      "customers": [{"customerIdentifier": f"c{i}"} for i in range(200)]}],
    }
    emu.admin.load_fixtures(fixtures)
    errors: list[Exception] = []

    def work(worker: int) -> None:
        try:
            c = client(emu, access_key="AKIACONCURRENT000001", secret_key="c/s")
            for batch in range(5):
                records = [{"Timestamp": now(), "CustomerIdentifier": f"c{worker * 25 + batch * 5 + i}",
                            "Dimension": "d", "Quantity": worker} for i in range(5)]
                statuses = {r["Status"] for r in c.batch_meter_usage(ProductCode="conc",
                                                                     UsageRecords=records)["Results"]}
                assert statuses == {"Success"}
        except (AssertionError, ClientError) as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    records = emu.admin.records()["records"]
    assert len(records) == 200 == len({r["customerIdentifier"] for r in records})
    assert emu.admin.stats()["operations"]["BatchMeterUsage"]["calls"] == 40


@pytest.mark.parametrize("raw", [b"GARBAGE\r\n\r\n", b"FOO / HTTP/1.1\r\nHost: x\r\n\r\n",
                                 b"POST / HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
                                 b"POST / HTTP/1.1\r\nX-Long: " + b"a" * 70000 + b"\r\n\r\n"])
def test_given_malformed_http_then_a_json_aws_error_and_the_server_keeps_serving(
    emu: EmulatorServer, raw: bytes
) -> None:
    import socket

    with socket.create_connection(("127.0.0.1", emu.port), timeout=10) as sock:
        sock.sendall(raw)
        chunks = []
        while data := sock.recv(65536):
            chunks.append(data)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    assert head.split()[1] in (b"400", b"431", b"501")
    assert b"x-amzn-RequestId" in head
    error = json.loads(body)
    assert error["__type"] in ("SerializationException", "UnknownOperationException") and error["message"]
    assert emu.admin.health()["status"] == "ok"


@pytest.mark.parametrize("customer", [
    {"customerAWSAccountId": "\u0661\u0662\u0663"},  # digits, but not ASCII: str.isdigit() took them
    {"customerAWSAccountId": "210987654399", "licenseArn": "not-an-arn"},
    {"customerIdentifier": "c" * 256},
], ids=["account-id-not-ascii", "license-arn", "customer-identifier-too-long"])
def test_given_a_customer_the_model_could_not_answer_then_minting_its_token_is_refused_naming_the_rule(
        emu: EmulatorServer, customer: dict[str, Any]) -> None:
    """ResolveCustomer answers the customer's fields as they are: a value outside the model's reply shape
    would be an answer AWS never gives."""
    with pytest.raises(AdminError) as info:
        emu.admin.mint_token(PRODUCT, customer)
    [field] = customer.keys() - {"customerAWSAccountId"} or {"customerAWSAccountId"}
    assert info.value.status == 400 and f"customer.{field}: Member must" in info.value.body["message"], info.value.body


@pytest.mark.parametrize("echo", ["verbatim", "normalised"])
def test_given_members_the_model_does_not_declare_or_null_then_the_echoed_usage_record_has_neither(
        emu: EmulatorServer, echo: str) -> None:
    emu.admin.set_config(echo=echo)
    record = {"Timestamp": now(), "Dimension": "users", "CustomerIdentifier": "cust-demo-0001", "Quantity": 1,
              "LicenseArn": None, "NotAMember": {"x": 1},
              "UsageAllocations": [{"AllocatedUsageQuantity": 1, "Tags": [{"Key": "k", "Value": "v", "Extra": 1}],
                                    "Unknown": True}]}
    reply = signed(emu, "BatchMeterUsage", {"ProductCode": PRODUCT, "UsageRecords": [record]})
    assert reply.status == 200, reply.json()
    [result] = reply.json()["Results"]
    echoed = result["UsageRecord"]
    assert result["Status"] == "Success"
    assert set(echoed) == {"Timestamp", "Dimension", "CustomerIdentifier", "Quantity", "UsageAllocations"}
    assert echoed["UsageAllocations"] == [{"AllocatedUsageQuantity": 1, "Tags": [{"Key": "k", "Value": "v"}]}]
