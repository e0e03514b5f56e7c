"""Fault switches and request-rate quotas, and botocore's own retries recovering from them."""

from __future__ import annotations

import time
from typing import Any

import pytest
from botocore.exceptions import ClientError, ReadTimeoutError
from metering_emulator.fixtures import load_fixtures
from metering_emulator.state import Config, State
from metering_emulator.testing import AdminError, EmulatorServer

from spec.emulator.support import PRODUCT, client, now

RETRYING = {"mode": "standard", "total_max_attempts": 5}


def _meter(c: Any, quantity: int = 1) -> Any:
    return c.meter_usage(ProductCode=PRODUCT, Timestamp=now(), UsageDimension="users", UsageQuantity=quantity)


def _records(*customers: str) -> list[dict[str, Any]]:
    return [{"Timestamp": now(), "CustomerIdentifier": c, "Dimension": "users", "Quantity": 2} for c in customers]


@pytest.mark.parametrize("mode", ["legacy", "standard", "adaptive"])
def test_given_two_injected_throttles_when_botocore_retries_then_the_call_succeeds(
    emu: EmulatorServer, mode: str
) -> None:
    emu.admin.add_fault(type="throttle", count=2, operations=["MeterUsage"])
    result = _meter(client(emu, retries={"mode": mode, "total_max_attempts": 5}))
    assert result["ResponseMetadata"]["RetryAttempts"] == 2
    stats = emu.admin.stats()["operations"]["MeterUsage"]
    assert (stats["calls"], stats["throttled"], stats["succeeded"]) == (3, 2, 1)
    assert emu.admin.faults() == []


def test_given_two_injected_500s_when_botocore_retries_then_the_batch_is_stored_once(emu: EmulatorServer) -> None:
    emu.admin.add_fault(type="error500", count=2, operations=["BatchMeterUsage"])
    result = client(emu, retries=RETRYING).batch_meter_usage(ProductCode=PRODUCT,
                                                             UsageRecords=_records("cust-demo-0001"))
    assert result["ResponseMetadata"]["RetryAttempts"] == 2
    assert result["Results"][0]["Status"] == "Success"
    assert len(emu.admin.records()["records"]) == 1
    assert emu.admin.stats()["operations"]["BatchMeterUsage"]["errors"] == {"InternalServiceErrorException": 2}


def test_given_a_dropped_connection_when_botocore_retries_then_the_call_succeeds(emu: EmulatorServer) -> None:
    emu.admin.add_fault(type="drop", count=1)
    result = client(emu, retries=RETRYING).resolve_customer(RegistrationToken="emu-demo-registration-token-0001")
    assert result["ResponseMetadata"]["RetryAttempts"] == 1
    assert result["CustomerIdentifier"] == "cust-demo-0001"


def test_given_a_dropped_connection_without_retries_then_botocore_sees_a_connection_error(
    emu: EmulatorServer,
) -> None:
    from botocore.exceptions import ConnectionClosedError, EndpointConnectionError

    emu.admin.add_fault(type="drop", count=1, operations=["MeterUsage"])
    with pytest.raises((ConnectionClosedError, EndpointConnectionError)):
        _meter(client(emu))
    assert emu.admin.records()["records"] == []


def test_given_a_lost_reply_when_botocore_retries_meter_usage_then_the_record_is_billed_once_with_one_id(
    emu: EmulatorServer,
) -> None:
    """``lostReply`` processes the call, then hangs up: the retry (botocore sends the same ClientToken, which
    it fills in once per call) is answered with the record the first attempt billed."""
    emu.admin.add_fault(type="lostReply", count=1, operations=["MeterUsage"])
    result = _meter(client(emu, retries=RETRYING))
    assert result["ResponseMetadata"]["RetryAttempts"] == 1
    [record] = emu.admin.records()["records"]
    assert record["meteringRecordId"] == result["MeteringRecordId"]
    assert emu.admin.stats()["operations"]["MeterUsage"]["succeeded"] == 2


def test_given_a_lost_reply_when_botocore_retries_a_batch_then_each_record_is_billed_once(emu: EmulatorServer) -> None:
    emu.admin.add_fault(type="lostReply", count=1, operations=["BatchMeterUsage"])
    result = client(emu, retries=RETRYING).batch_meter_usage(ProductCode=PRODUCT,
                                                             UsageRecords=_records("cust-demo-0001", "cust-demo-0002"))
    assert result["ResponseMetadata"]["RetryAttempts"] == 1
    assert [r["Status"] for r in result["Results"]] == ["Success", "Success"]
    stored = emu.admin.records()["records"]
    assert sorted(r["meteringRecordId"] for r in stored) == sorted(r["MeteringRecordId"] for r in result["Results"])


def test_given_single_use_registration_tokens_when_a_token_is_resolved_again_then_it_has_expired(
    emu: EmulatorServer,
) -> None:
    """The model's ExpiredTokenException: "... the buyer has resubmitted the registration token ..."."""
    token = "emu-demo-registration-token-0001"
    assert client(emu).resolve_customer(RegistrationToken=token)["ProductCode"]
    assert client(emu).resolve_customer(RegistrationToken=token)["ProductCode"]  # default: idempotent
    emu.admin.reset()
    emu.admin.set_config(single_use_registration_tokens=True)
    assert client(emu).resolve_customer(RegistrationToken=token)["ProductCode"]
    with pytest.raises(ClientError) as info:
        client(emu).resolve_customer(RegistrationToken=token)
    assert info.value.response["Error"]["Code"] == "ExpiredTokenException"


def test_given_added_latency_when_the_client_timeout_is_shorter_then_a_read_timeout(emu: EmulatorServer) -> None:
    import boto3
    from botocore.config import Config as BotoConfig

    emu.admin.add_fault(type="latency", latencyMs=1500, count=1)
    impatient = boto3.client("meteringmarketplace", region_name="us-east-1", endpoint_url=emu.url,
                             aws_access_key_id="AKIAEMULATOR0000TEST",
                             aws_secret_access_key="emulator/Secret+Key/DoNotUseInProduction00",
                             config=BotoConfig(read_timeout=0.3, retries={"total_max_attempts": 1}))
    with pytest.raises(ReadTimeoutError):
        impatient.resolve_customer(RegistrationToken="emu-demo-registration-token-0001")
    assert impatient.resolve_customer(RegistrationToken="emu-demo-registration-token-0001")["ProductCode"] == PRODUCT


@pytest.mark.parametrize(("kind", "code", "message"), [("html503", "503", "Service Unavailable"),
                                                       ("empty502", "502", "Bad Gateway")])
def test_given_a_gateway_error_fault_then_botocore_sees_a_generic_error_and_its_retries_recover(
    emu: EmulatorServer, kind: str, code: str, message: str
) -> None:
    emu.admin.add_fault(type=kind, count=1)
    with pytest.raises(ClientError) as info:
        client(emu).resolve_customer(RegistrationToken="emu-demo-registration-token-0001")
    assert (info.value.response["Error"]["Code"], info.value.response["Error"]["Message"]) == (code, message)
    assert type(info.value) is ClientError
    emu.admin.add_fault(type=kind, count=1)
    result = client(emu, retries=RETRYING).resolve_customer(RegistrationToken="emu-demo-registration-token-0001")
    assert result["ResponseMetadata"]["RetryAttempts"] == 1
    assert emu.admin.stats()["operations"]["ResolveCustomer"]["errors"] == {code: 2}


def test_given_an_unprocessed_fault_when_batching_then_records_come_back_unprocessed_and_can_be_resent(
    emu: EmulatorServer,
) -> None:
    emu.admin.add_fault(type="unprocessed", count=1)
    c = client(emu)
    result = c.batch_meter_usage(ProductCode=PRODUCT, UsageRecords=_records("cust-demo-0001", "cust-demo-0002"))
    assert [r["CustomerIdentifier"] for r in result["UnprocessedRecords"]] == ["cust-demo-0001"]
    assert [r["UsageRecord"]["CustomerIdentifier"] for r in result["Results"]] == ["cust-demo-0002"]
    assert [r["customerIdentifier"] for r in emu.admin.records()["records"]] == ["cust-demo-0002"]
    retry = c.batch_meter_usage(ProductCode=PRODUCT, UsageRecords=result["UnprocessedRecords"])
    assert retry["Results"][0]["Status"] == "Success" and retry["UnprocessedRecords"] == []


def test_given_a_fault_for_one_operation_then_other_operations_are_untouched(emu: EmulatorServer) -> None:
    emu.admin.add_fault(type="error500", operations=["BatchMeterUsage"])
    c = client(emu)
    assert _meter(c)["MeteringRecordId"]
    with pytest.raises(ClientError) as info:
        c.batch_meter_usage(ProductCode=PRODUCT, UsageRecords=_records("cust-demo-0001"))
    assert info.value.response["Error"]["Code"] == "InternalServiceErrorException"
    [fault] = emu.admin.faults()
    assert fault["fired"] == 1 and "remaining" not in fault


def test_given_rate_zero_then_the_fault_never_fires_and_rate_one_always_does(emu: EmulatorServer) -> None:
    emu.admin.add_fault(type="throttle", rate=0)
    c = client(emu)
    for _ in range(5):
        c.resolve_customer(RegistrationToken="emu-demo-registration-token-0001")
    emu.admin.clear_faults()
    emu.admin.add_fault(type="throttle", rate=1)
    for _ in range(3):
        with pytest.raises(c.exceptions.ThrottlingException):
            c.resolve_customer(RegistrationToken="emu-demo-registration-token-0001")
    assert emu.admin.stats()["operations"]["ResolveCustomer"]["throttled"] == 3


def test_given_a_fractional_rate_with_a_seed_then_it_fires_for_some_calls_only() -> None:
    with EmulatorServer(quotas=False, seed=7, faults=[{"type": "error500", "rate": 0.5}]) as emu:
        c = client(emu)
        outcomes = []
        for _ in range(40):
            try:
                c.resolve_customer(RegistrationToken="emu-demo-registration-token-0001")
                outcomes.append("ok")
            except ClientError as exc:
                outcomes.append(exc.response["Error"]["Code"])
    assert set(outcomes) == {"ok", "InternalServiceErrorException"}


def test_given_reset_then_faults_armed_at_run_time_are_gone(emu: EmulatorServer) -> None:
    emu.admin.add_fault(type="error500")
    emu.admin.reset()
    assert emu.admin.faults() == []
    assert _meter(client(emu))["MeteringRecordId"]


@pytest.mark.parametrize("spec", [
    {"type": "explode"}, {"type": "throttle", "rate": 2}, {"type": "throttle", "count": 0},
    {"type": "latency"}, {"type": "drop", "operations": ["Nope"]}, {"type": "drop", "extra": 1},
    {"type": "error500", "count": True},
])
def test_given_a_bad_fault_spec_then_the_admin_api_refuses_it(emu: EmulatorServer, spec: dict[str, Any]) -> None:
    with pytest.raises(AdminError) as info:
        emu.admin.call("POST", "faults", spec)
    assert info.value.status == 400 and info.value.body["__type"] == "ValidationException"
    assert emu.admin.faults() == []


# -- quotas ------------------------------------------------------------------------------------------------

class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture(scope="module")
def quota_state() -> State:
    return State(load_fixtures(None), Config())


def test_given_quotas_when_an_account_exceeds_ten_meter_calls_a_second_then_it_is_refused_until_the_window_moves(
    quota_state: State,
) -> None:
    quota_state.reset()
    clock = FakeClock()
    quota_state.monotonic = clock
    assert [quota_state.take_quota("K1", "MeterUsage") for _ in range(11)] == [True] * 10 + [False]
    assert quota_state.take_quota("K2", "MeterUsage"), "quotas are per account"
    assert quota_state.take_quota("K1", "BatchMeterUsage"), "quotas are per operation"
    clock.t += 0.5
    assert not quota_state.take_quota("K1", "MeterUsage")
    clock.t += 0.51
    assert quota_state.take_quota("K1", "MeterUsage")


def test_given_quotas_then_register_usage_allows_five_a_second_and_resolve_customer_is_unlimited(
    quota_state: State,
) -> None:
    quota_state.reset()
    quota_state.monotonic = FakeClock()
    assert [quota_state.take_quota("K", "RegisterUsage") for _ in range(6)] == [True] * 5 + [False]
    assert all(quota_state.take_quota("K", "ResolveCustomer") for _ in range(100))


def test_given_quotas_off_then_nothing_is_refused(quota_state: State) -> None:
    quota_state.reset()
    quota_state.monotonic = FakeClock()
    quota_state.config.update({"quotas": False})
    assert all(quota_state.take_quota("K", "MeterUsage") for _ in range(100))


def test_given_quotas_on_when_a_burst_hits_the_server_then_throttling_exception_at_400(
    metering_emulator: EmulatorServer,
) -> None:
    c = client(metering_emulator)
    metering_emulator.state.monotonic = FakeClock()  # the burst happens within one quota second
    try:
        codes = []
        for _ in range(14):
            try:
                _meter(c)
                codes.append("ok")
            except ClientError as exc:
                codes.append(exc.response["Error"]["Code"])
                assert exc.response["ResponseMetadata"]["HTTPStatusCode"] == 400
        assert codes == ["ok"] * 10 + ["ThrottlingException"] * 4
        assert client(metering_emulator).register_usage(ProductCode=PRODUCT, PublicKeyVersion=1)["Signature"]
        stats = metering_emulator.admin.stats()["operations"]["MeterUsage"]
        assert (stats["throttled"], stats["succeeded"]) == (4, 10)
    finally:
        metering_emulator.state.monotonic = time.monotonic


def test_given_two_access_keys_of_one_account_when_both_meter_then_they_share_the_account_quota() -> None:
    """AWS counts the quota per account and region, not per access key: two users' keys of one account
    together get 10 Meter Usage calls a second; a key of another account has its own 10."""
    import copy

    from metering_emulator.fixtures import DEFAULT_FIXTURES

    fixtures = copy.deepcopy(DEFAULT_FIXTURES)
    fixtures["credentials"] += [
        {"accessKeyId": "AKIAEMULATOR0000SAME", "secretAccessKey": "emulator/Same+Account/Secret00000000000",
         "accountId": "111122223333"},
        {"accessKeyId": "AKIAEMULATOR000OTHER", "secretAccessKey": "emulator/Other+Account/Secret0000000000",
         "accountId": "999988887777"},
    ]
    with EmulatorServer(fixtures=fixtures, quotas=True) as emu:
        emu.state.monotonic = FakeClock()  # every call lands in the same quota second
        first, second = client(emu), client(emu, access_key="AKIAEMULATOR0000SAME",
                                            secret_key="emulator/Same+Account/Secret00000000000")
        other = client(emu, access_key="AKIAEMULATOR000OTHER", secret_key="emulator/Other+Account/Secret0000000000")
        codes = []
        for i in range(12):
            try:
                _meter(first if i % 2 == 0 else second)
                codes.append("ok")
            except ClientError as exc:
                codes.append(exc.response["Error"]["Code"])
        assert codes == ["ok"] * 10 + ["ThrottlingException"] * 2
        with pytest.raises(ClientError) as info:  # not this product's seller, but not throttled either
            _meter(other)
        assert info.value.response["Error"]["Code"] == "CustomerNotEntitledException", "own quota per account"
