"""Every AWS error class is mapped to one MeteringError with code, message, request id, operation, status
and retryable — all from the emulator; scripted replies only for reply *forms* the emulator does not send
(namespaced or suffixed types, header-only codes, a capitalised ``Message``, a non-JSON body, a body cut
short; see spec/connector/scripted.py)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from elasticio_sailor import Rebound
from metering_emulator.testing import EmulatorServer

from lib.client import MeteringClient, Settings
from lib.errors import ERROR_TABLE, MeteringError, parse_code
from lib.operations import OPERATIONS
from lib.resilience import AdaptivePacer, Backoff
from spec.connector.builders import (
    LICENSE,
    PRODUCT,
    SESSION_HOUR,
    SESSION_TOKEN,
    TEMP_ACCESS_KEY,
    TEMP_SECRET_KEY,
    a_config,
    a_record,
    default_fixtures,
    hour_start,
    run_action,
)
from spec.connector.scripted import Canned, DroppingServer, ScriptedServer
from spec.support.ports import free_port
from spec.support.tls import self_signed, server_context

Setup = Callable[[EmulatorServer], None]


def _nothing(emu: EmulatorServer) -> None:
    return None


def _meter_once(emu: EmulatorServer) -> None:
    run_action("meterUsage", {"ProductCode": PRODUCT, "Timestamp": SESSION_HOUR, "UsageDimension": "users",
                              "UsageQuantity": 1, "ClientToken": "token-1"}, a_config(emu.url))


def _short_tokens(emu: EmulatorServer) -> None:
    emu.admin.mint_token(PRODUCT, {"customerIdentifier": "cust-demo-0001"}, token="short-lived-token")
    emu.admin.set_config(token_lifetime_seconds=0.001)


def _strict(emu: EmulatorServer) -> None:
    emu.admin.set_config(strict_customers=True)


def meter(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"ProductCode": PRODUCT, "Timestamp": SESSION_HOUR, "UsageDimension": "users",
                            "UsageQuantity": 1}
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


EMULATED: list[tuple[str, Setup, str, dict[str, Any], dict[str, Any]]] = [
    ("InvalidProductCodeException", _nothing, "meterUsage", meter(ProductCode="no-such-product"), {}),
    ("InvalidUsageDimensionException", _nothing, "meterUsage", meter(UsageDimension="no_such_dimension"), {}),
    ("TimestampOutOfBoundsException", _nothing, "meterUsage", meter(Timestamp=hour_start(-12)), {}),
    ("DuplicateRequestException", _meter_once, "meterUsage", meter(UsageQuantity=2), {}),
    ("IdempotencyConflictException", _meter_once, "meterUsage",
     meter(UsageDimension="api_calls", ClientToken="token-1"), {}),
    ("CustomerNotEntitledException", _nothing, "meterUsage", meter(),
     {"accessKeyId": TEMP_ACCESS_KEY, "secretAccessKey": TEMP_SECRET_KEY, "sessionToken": SESSION_TOKEN}),
    ("InvalidTokenException", _nothing, "resolveCustomer", {"RegistrationToken": "AbCd EfGh=="}, {}),
    ("ExpiredTokenException", _short_tokens, "resolveCustomer", {"RegistrationToken": "short-lived-token"}, {}),
    ("InvalidPublicKeyVersionException", _nothing, "registerUsage",
     {"ProductCode": PRODUCT, "PublicKeyVersion": 9}, {}),
    ("UnrecognizedClientException", _nothing, "resolveCustomer", {"RegistrationToken": "x"},
     {"accessKeyId": "AKIAUNKNOWNKEY000000"}),
    ("InvalidSignatureException", _nothing, "resolveCustomer", {"RegistrationToken": "x"},
     {"secretAccessKey": "not-the-right-secret"}),
]


@pytest.mark.parametrize(("code", "setup", "action", "body", "cfg_changes"), EMULATED,
                         ids=[case[0] for case in EMULATED])
def test_given_the_emulator_answers_an_error_when_running_then_one_classified_error_is_raised(
        metering_emulator: EmulatorServer, code: str, setup: Setup, action: str, body: dict[str, Any],
        cfg_changes: dict[str, Any]) -> None:
    setup(metering_emulator)
    with pytest.raises(MeteringError) as raised:
        run_action(action, body, a_config(metering_emulator.url, **cfg_changes))
    err = raised.value
    assert (err.code, err.name, err.operation) == (code, code, OPERATIONS[action].name)
    assert err.status == 400 if code != "IdempotencyConflictException" else err.status == 409
    assert err.request_id and err.request_id in str(err)
    assert err.retryable is False and err.retryable == ERROR_TABLE[code].retryable
    details = err.error_details
    assert json.loads(json.dumps(details)) == details
    assert details["code"] == code and details["requestId"] == err.request_id and details["retryable"] is False
    assert details["operation"] == err.operation and details["statusCode"] == err.status
    assert details["awsMessage"] and details["awsMessage"] in str(err)


# Refusals of a whole BatchMeterUsage call caused by one record: the record is isolated and reported.
BATCH_REFUSALS: list[tuple[str, Setup, dict[str, Any]]] = [
    ("InvalidLicenseException", _nothing, {"UsageRecords": [
        {"Timestamp": hour_start(), "CustomerAWSAccountId": "999988887777", "LicenseArn": LICENSE + "0",
         "Dimension": "users"}]}),
    ("InvalidCustomerIdentifierException", _strict,
     {"ProductCode": PRODUCT, "UsageRecords": [a_record(customer="nobody")]}),
    # ValidationException: every record the emulator refuses with it is refused locally first now (a
    # CustomerIdentifier record without ProductCode, an account record without LicenseArn and ProductCode);
    # the raw client's mapping of it is tested below.
]


@pytest.mark.parametrize(("code", "setup", "body"), BATCH_REFUSALS, ids=[case[0] for case in BATCH_REFUSALS])
def test_given_aws_refuses_a_batch_for_one_record_then_that_record_is_reported_with_the_code(
        metering_emulator: EmulatorServer, code: str, setup: Setup, body: dict[str, Any]) -> None:
    setup(metering_emulator)
    out = run_action("batchMeterUsage", body, a_config(metering_emulator.url))["body"]
    result = out["Results"][0]
    assert result["Status"] == "Rejected" and result["ErrorCode"] == code and result["ErrorMessage"]
    assert "MeteringRecordId" not in result and out["AllSucceeded"] is False
    assert out["RequestIds"] and ERROR_TABLE[code].retryable is False
    assert metering_emulator.admin.records()["records"] == []


def _settings(url: str, **changes: Any) -> Settings:
    return Settings.from_cfg(a_config(url, **changes))


@pytest.mark.parametrize("code", ["InvalidTagException", "InvalidUsageAllocationsException"])
def test_given_input_the_schema_would_stop_when_sent_raw_then_the_server_error_is_still_mapped(
        metering_emulator: EmulatorServer, code: str) -> None:
    """The connector validates these before calling; sent anyway, the server's answer is still classified."""
    metering_emulator.admin.set_config(modeled_constraint_errors=True)  # tag limits as InvalidTagException
    client = MeteringClient(_settings(metering_emulator.url))
    tags = [{"Key": f"k{i}", "Value": "v"} for i in range(6 if code == "InvalidTagException" else 1)]
    quantity = 1 if code == "InvalidTagException" else 5
    payload = {"ProductCode": PRODUCT, "UsageRecords": [dict(
        a_record(), Quantity=quantity, UsageAllocations=[{"AllocatedUsageQuantity": 1, "Tags": tags}])]}
    with pytest.raises(MeteringError) as raised:
        client.call(OPERATIONS["batchMeterUsage"], payload)
    assert raised.value.code == code and raised.value.retryable is False and raised.value.request_id


def test_given_a_record_naming_no_product_when_sent_raw_then_aws_validation_exception_is_kept_and_final(
        metering_emulator: EmulatorServer) -> None:
    """The action refuses such a record before calling (lib/validation.py batch_problems); sent anyway, the
    server's ValidationException keeps its code and request id and is not retried."""
    client = MeteringClient(_settings(metering_emulator.url))
    payload = {"UsageRecords": [{"Timestamp": hour_start(), "CustomerAWSAccountId": "111122223333",
                                 "Dimension": "users", "Quantity": 1}]}
    with pytest.raises(MeteringError) as raised:
        client.call(OPERATIONS["batchMeterUsage"], payload)
    assert raised.value.code == "ValidationException" and raised.value.retryable is False
    assert raised.value.request_id and raised.value.aws_message
    assert metering_emulator.admin.stats()["operations"]["BatchMeterUsage"]["calls"] == 1


def _fixtures(**credential: Any) -> Setup:
    def setup(emu: EmulatorServer) -> None:
        emu.admin.load_fixtures(default_fixtures(**credential))
    return setup


def _config(**changes: Any) -> Setup:
    def setup(emu: EmulatorServer) -> None:
        emu.admin.set_config(**changes)
    return setup


def _fault(kind: str) -> Setup:
    def setup(emu: EmulatorServer) -> None:
        emu.admin.add_fault(type=kind)
    return setup


RESOLVE = ("resolveCustomer", {"RegistrationToken": "emu-demo-registration-token-0001"})
REGISTER = ("registerUsage", {"ProductCode": PRODUCT, "PublicKeyVersion": 1})
METER = ("meterUsage", meter())
# (code, setup, (action, payload sent as is), status, kind, retryable, words of the AWS message)
CLASSIFIED: list[tuple[str, Setup, tuple[str, dict[str, Any]], int, str, bool, str]] = [
    ("DisabledApiException", _config(disabled_operations=["ResolveCustomer"]), RESOLVE, 400,
     "region-or-endpoint", False, "disabled"),
    ("InvalidRegionException", _fixtures(resourceRegion="eu-central-1"), REGISTER, 400,
     "region-or-endpoint", False, "eu-central-1"),
    ("InvalidEndpointRegionException", _fixtures(resourceRegion="eu-central-1"), METER, 400,
     "region-or-endpoint", False, "eu-central-1"),
    ("PlatformNotSupportedException", _fixtures(platform="ec2"), REGISTER, 400, "permission", False, "ECS"),
    ("AccessDeniedException", _fixtures(deniedOperations=["ResolveCustomer"]), RESOLVE, 400, "permission", False,
     "not authorized to perform: aws-marketplace:ResolveCustomer"),
    ("UnauthorizedException", _fixtures(deniedOperations=["MeterUsage"]), ("meterUsage", meter(DryRun=True)), 400,
     "permission", False, "not authorized"),
    ("SerializationException", _nothing, ("resolveCustomer", {"RegistrationToken": 5}), 400, "input", False,
     "registrationToken"),
    ("ThrottlingException", _fault("throttle"), RESOLVE, 400, "throttled", True, "Rate exceeded"),
    ("InternalServiceErrorException", _fault("error500"), RESOLVE, 500, "transient", True, "internal error"),
    ("503", _fault("html503"), RESOLVE, 503, "transient", True, "Service Unavailable"),
    ("502", _fault("empty502"), RESOLVE, 502, "transient", True, "Bad Gateway"),
]


@pytest.mark.parametrize(("code", "setup", "call", "status", "kind", "retryable", "words"), CLASSIFIED,
                         ids=[case[0] for case in CLASSIFIED])
def test_given_the_emulator_answers_an_error_when_calling_then_it_is_classified_and_retried_only_if_transient(
        metering_emulator: EmulatorServer, code: str, setup: Setup, call: tuple[str, dict[str, Any]], status: int,
        kind: str, retryable: bool, words: str) -> None:
    setup(metering_emulator)
    sleeps: list[float] = []
    client = MeteringClient(_settings(metering_emulator.url), backoff=Backoff(max_attempts=3, rand=lambda: 0.5),
                            sleep=sleeps.append)
    action, payload = call
    with pytest.raises(MeteringError) as raised:
        client.call(OPERATIONS[action], payload)
    err = raised.value
    assert (err.code, err.kind, err.retryable, err.status) == (code, kind, retryable, status)
    assert err.request_id and words in err.aws_message
    assert metering_emulator.admin.stats()["operations"][OPERATIONS[action].name]["calls"] == (3 if retryable else 1)
    assert sleeps == ([0.1, 0.2] if retryable else [])
    assert metering_emulator.admin.records()["records"] == []


def _aws_error(status: int, body: Any, **headers: str) -> Canned:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Canned(status, raw, {"x-amzn-RequestId": "rid-scripted", **headers})


CASES = json.loads((Path(__file__).parent / "cases" / "error_replies.json").read_text())["cases"]
SCRIPTED: list[tuple[str, Canned, str, bool, str | None]] = [
    (case["expectCode"],
     Canned(case["status"], case["body"].encode(), case["headers"]) if isinstance(case["body"], str)
     else _aws_error(case["status"], case["body"], **case["headers"]),
     case["expectKind"], case["expectRetryable"], case.get("expectMessage"))
    for case in CASES
]


@pytest.mark.parametrize(("code", "reply", "kind", "retryable", "message"), SCRIPTED, ids=[c[0] for c in SCRIPTED])
def test_given_a_reply_form_the_emulator_does_not_send_when_calling_then_it_is_parsed_like_botocore(
        code: str, reply: Canned, kind: str, retryable: bool, message: str | None) -> None:
    sleeps: list[float] = []
    with ScriptedServer([reply]) as server:
        client = MeteringClient(_settings(server.url), backoff=Backoff(max_attempts=3, rand=lambda: 0.5),
                                sleep=sleeps.append)
        with pytest.raises(MeteringError) as raised:
            client.call(OPERATIONS["resolveCustomer"], {"RegistrationToken": "t"})
    err = raised.value
    assert (err.code, err.kind, err.retryable) == (code, kind, retryable)
    if message is not None:
        assert err.aws_message == message
    assert len(server.requests) == (3 if retryable else 1)
    assert sleeps == ([0.1, 0.2] if retryable else [])


def test_given_namespaced_and_suffixed_types_then_parse_code_strips_them_as_botocore_does() -> None:
    assert parse_code("com.amazon.coral.service#SerializationException") == "SerializationException"
    assert parse_code("ExpiredTokenException:http://internal.amazon.com/coral/") == "ExpiredTokenException"
    assert parse_code("aws.protocoltests#Foo:bar") == "Foo"


@pytest.mark.parametrize(("fault", "code"), [("throttle", "ThrottlingException"),
                                             ("error500", "InternalServiceErrorException"),
                                             ("drop", "ConnectionError")])
def test_given_a_persistent_transient_fault_when_retries_run_out_then_the_message_is_rebounded(
        metering_emulator: EmulatorServer, fault: str, code: str) -> None:
    metering_emulator.admin.add_fault(type=fault, count=10, operations=["ResolveCustomer"])
    sleeps: list[float] = []
    client = MeteringClient(_settings(metering_emulator.url),
                            backoff=Backoff(base=0.01, cap=0.05, max_attempts=4), sleep=sleeps.append)
    with pytest.raises(Rebound) as raised:
        run_action("resolveCustomer", {"RegistrationToken": "emu-demo-registration-token-0001"},
                   a_config(metering_emulator.url), client=client)
    cause = raised.value.__cause__
    assert isinstance(cause, MeteringError) and cause.code == code and cause.retryable
    assert len(sleeps) == 3 and all(0 <= s <= 0.05 for s in sleeps)
    assert metering_emulator.admin.stats()["operations"]["ResolveCustomer"]["calls"] == 4


@pytest.mark.parametrize(("setup", "action", "payload", "kind"), [
    (_short_tokens, "resolveCustomer", {"RegistrationToken": "short-lived-token"}, "input"),
    (_fixtures(expired=True), "resolveCustomer", {"RegistrationToken": "emu-demo-registration-token-0001"},
     "credentials"),
    (_fixtures(expired=True), "batchMeterUsage", {"ProductCode": PRODUCT, "UsageRecords": []}, "credentials"),
], ids=["registration-token", "session-resolve", "session-batch"])
def test_given_expired_token_then_a_registration_token_is_told_from_an_expired_session(
        metering_emulator: EmulatorServer, setup: Setup, action: str, payload: dict[str, Any], kind: str) -> None:
    setup(metering_emulator)
    client = MeteringClient(_settings(metering_emulator.url))
    with pytest.raises(MeteringError) as raised:
        client.call(OPERATIONS[action], payload)
    assert raised.value.code == "ExpiredTokenException" and raised.value.kind == kind
    assert raised.value.retryable is False


def test_given_a_reply_cut_off_mid_body_when_calling_then_it_is_a_retryable_connection_error() -> None:
    truncated = Canned(200, b'{"Results": [', {"Content-Length": "500", "x-amzn-RequestId": "rid"}, close=True)
    with ScriptedServer([truncated]) as server:
        client = MeteringClient(_settings(server.url), backoff=Backoff(max_attempts=2), sleep=lambda s: None)
        with pytest.raises(MeteringError) as raised:
            client.call(OPERATIONS["resolveCustomer"], {"RegistrationToken": "t"})
    assert raised.value.code == "ConnectionError" and raised.value.retryable
    assert len(server.requests) == 2


def test_given_a_reply_slower_than_the_read_timeout_then_it_is_a_retryable_read_timeout(
        metering_emulator: EmulatorServer) -> None:
    metering_emulator.admin.add_fault(type="latency", latency_ms=600, operations=["ResolveCustomer"])
    client = MeteringClient(_settings(metering_emulator.url), timeout=(2.0, 0.2), backoff=Backoff(max_attempts=1))
    with pytest.raises(MeteringError) as raised:
        client.call(OPERATIONS["resolveCustomer"], {"RegistrationToken": "emu-demo-registration-token-0001"})
    assert (raised.value.code, raised.value.aws_message, raised.value.retryable) == ("ConnectionError", "ReadTimeout",
                                                                                     True)


def test_given_nothing_listening_then_it_is_a_retryable_connection_error_and_the_client_still_works_after(
        metering_emulator: EmulatorServer) -> None:
    client = MeteringClient(_settings(f"http://127.0.0.1:{free_port()}"), backoff=Backoff(max_attempts=1))
    with pytest.raises(MeteringError) as raised:
        client.call(OPERATIONS["resolveCustomer"], {"RegistrationToken": "t"})
    assert (raised.value.code, raised.value.aws_message, raised.value.retryable) == ("ConnectionError",
                                                                                     "ConnectionError", True)
    working = MeteringClient(_settings(metering_emulator.url))
    working.call(OPERATIONS["resolveCustomer"], {"RegistrationToken": "emu-demo-registration-token-0001"})
    working.close()  # a closed client opens a new pool on its next call, as requests' adapter does
    assert working.call(OPERATIONS["resolveCustomer"], {"RegistrationToken": "emu-demo-registration-token-0001"}
                        ).data["CustomerIdentifier"] == "cust-demo-0001"


def test_given_an_endpoint_whose_certificate_does_not_verify_then_it_is_a_tls_error_not_retried(
        tmp_path: Path) -> None:
    context = server_context(*self_signed(tmp_path))
    with ScriptedServer([_aws_error(200, {})]) as server:
        server._httpd.socket = context.wrap_socket(server._httpd.socket, server_side=True)
        sleeps: list[float] = []
        client = MeteringClient(_settings(server.url.replace("http://", "https://")),
                                backoff=Backoff(max_attempts=3), sleep=sleeps.append)
        with pytest.raises(MeteringError) as raised:
            client.call(OPERATIONS["resolveCustomer"], {"RegistrationToken": "t"})
    err = raised.value
    assert (err.code, err.kind, err.retryable, sleeps) == ("TLSError", "region-or-endpoint", False, [])
    assert "TLS verification of the endpoint failed" in str(err) and server.requests == []


@pytest.mark.parametrize("variable", ["AWS_CA_BUNDLE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"])
def test_given_a_ca_bundle_variable_then_the_endpoint_is_verified_with_that_bundle(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str) -> None:
    """A proxy that re-signs TLS or a VPC endpoint with a private CA: the bundle botocore (AWS_CA_BUNDLE) or
    requests (REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE) is told to trust is trusted for metering calls too."""
    for name in ("AWS_CA_BUNDLE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    cert_file, key_file = self_signed(tmp_path)
    monkeypatch.setenv(variable, str(cert_file))
    context = server_context(cert_file, key_file)
    with ScriptedServer([_aws_error(200, {"CustomerIdentifier": "c"})]) as server:
        server._httpd.socket = context.wrap_socket(server._httpd.socket, server_side=True)
        client = MeteringClient(_settings(server.url.replace("http://", "https://")))
        reply = client.call(OPERATIONS["resolveCustomer"], {"RegistrationToken": "t"})
        assert reply.data == {"CustomerIdentifier": "c"}
    monkeypatch.setenv(variable, str(tmp_path / "missing.pem"))
    with pytest.raises(MeteringError) as raised:
        MeteringClient(_settings(server.url))
    assert raised.value.code == "InvalidCABundle" and variable in str(raised.value) and not raised.value.retryable


def test_given_a_tls_handshake_cut_short_by_the_network_then_it_is_retried_and_the_message_rebounded() -> None:
    sleeps: list[float] = []
    with DroppingServer() as dropping:
        url = dropping.url.replace("http://", "https://")
        client = MeteringClient(_settings(url), backoff=Backoff(base=0.01, cap=0.05, max_attempts=3),
                                sleep=sleeps.append)
        with pytest.raises(Rebound) as raised:
            run_action("resolveCustomer", {"RegistrationToken": "t"}, a_config(url), client=client)
    cause = raised.value.__cause__
    assert isinstance(cause, MeteringError)
    assert (cause.code, cause.kind, cause.retryable) == ("ConnectionError", "transient", True)
    assert "TLS handshake cut short" in cause.aws_message
    assert len(sleeps) == 2 and dropping.connections == 3


@pytest.mark.parametrize("bug", [TypeError("a bug in the signer"), ValueError("not about a header")],
                         ids=["TypeError", "ValueError"])
def test_given_a_programming_error_while_sending_then_it_is_raised_as_is_not_blamed_on_the_credentials(
        metering_emulator: EmulatorServer, bug: Exception) -> None:
    """Only http.client's refusal of a header value (``Invalid header value …``, UnicodeEncodeError) becomes
    RequestNotSent; anything else raised while preparing or sending is a bug and surfaces with its traceback."""
    client = MeteringClient(_settings(metering_emulator.url))

    def broken(_prep: Any) -> Any:
        raise bug

    client._exchange = broken  # type: ignore[method-assign,assignment]
    with pytest.raises(type(bug)) as raised:
        client.call(OPERATIONS["resolveCustomer"], {"RegistrationToken": "t"})
    assert raised.value is bug


def test_given_a_429_answer_without_a_throttling_code_then_it_is_throttling_and_the_pace_slows() -> None:
    """A proxy or gateway in front of AWS may answer 429 Too Many Requests with a code of its own: retried,
    and counted as throttling by the adaptive pace (its window drops), as a ThrottlingException is."""
    pacer = AdaptivePacer(10)
    with ScriptedServer([_aws_error(429, b"Too Many Requests", **{"Content-Type": "text/plain"}),
                         _aws_error(200, {"CustomerIdentifier": "c"})]) as server:
        sleeps: list[float] = []
        client = MeteringClient(_settings(server.url), backoff=Backoff(max_attempts=3), sleep=sleeps.append,
                                pacer_for=lambda op: pacer)
        assert client.call(OPERATIONS["resolveCustomer"], {"RegistrationToken": "t"}).attempts == 2
    assert len(sleeps) == 1 and pacer.throttled == 1 and pacer.control.limit < 10


def test_given_meter_usage_signed_with_access_keys_then_the_hint_names_the_credentials_not_only_the_policy(
        metering_emulator: EmulatorServer) -> None:
    metering_emulator.admin.set_config(refuse_long_term_keys=True)
    with pytest.raises(MeteringError) as raised:
        run_action("meterUsage", {"ProductCode": PRODUCT, "Timestamp": hour_start(), "UsageDimension": "users"},
                   a_config(metering_emulator.url))
    text = str(raised.value)
    assert raised.value.code == "AccessDeniedException" and "long-term access keys are not supported" in text
    assert "need the workload's own IAM role, not access keys" in text
