"""verifyCredentials tells bad credentials, a missing permission and a wrong region/endpoint apart."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from metering_emulator.testing import EmulatorServer

import verifyCredentials
from spec.connector.builders import (
    SESSION_TOKEN,
    TEMP_ACCESS_KEY,
    TEMP_SECRET_KEY,
    StepContext,
    a_config,
    default_fixtures,
)
from spec.connector.scripted import Canned, ScriptedServer
from spec.support.ports import free_port


def calls(emu: EmulatorServer) -> dict[str, int]:
    """Calls per operation the emulator answered."""
    return {name: entry["calls"] for name, entry in emu.admin.stats()["operations"].items()}


def test_given_valid_credentials_then_verified_and_nothing_is_metered(metering_emulator: EmulatorServer) -> None:
    assert verifyCredentials.verify(StepContext(), a_config(metering_emulator.url)) == {"verified": True}
    temp = a_config(metering_emulator.url, accessKeyId=TEMP_ACCESS_KEY, secretAccessKey=TEMP_SECRET_KEY,
                    sessionToken=SESSION_TOKEN)
    assert verifyCredentials.verify(StepContext(), temp) == {"verified": True}
    assert metering_emulator.admin.records()["records"] == []
    ops = metering_emulator.admin.stats()["operations"]
    assert "MeterUsage" not in ops and "BatchMeterUsage" not in ops


@pytest.mark.parametrize(("changes", "start"), [
    ({"secretAccessKey": "wrong/secret/key/0000000000000000000000"}, "Bad credentials"),
    ({"accessKeyId": "AKIANOSUCHKEY0000000"}, "Bad credentials"),
    ({"accessKeyId": TEMP_ACCESS_KEY, "secretAccessKey": TEMP_SECRET_KEY}, "Bad credentials"),
    ({"region": "eu-west-1"}, "Wrong region"),
])
def test_given_credentials_aws_rejects_then_the_reason_names_the_cause(
        metering_emulator: EmulatorServer, changes: dict[str, Any], start: str) -> None:
    result = verifyCredentials.verify(StepContext(), a_config(metering_emulator.url, **changes))
    assert result["verified"] is False
    assert result["reason"].startswith(start), result["reason"]
    assert "0000000000000000000000" not in result["reason"]


def test_given_an_endpoint_with_nothing_listening_then_the_reason_is_the_endpoint() -> None:
    result = verifyCredentials.check(a_config(f"http://127.0.0.1:{free_port()}"))
    assert result["verified"] is False and result["reason"].startswith("Wrong region or endpoint")


def test_given_an_endpoint_that_is_not_the_metering_api_then_the_reason_is_the_endpoint() -> None:
    with ScriptedServer([Canned(404, b"<html>Not Found</html>", {"Content-Type": "text/html"})]) as server:
        result = verifyCredentials.check(a_config(server.url))
    assert result["verified"] is False and result["reason"].startswith("Wrong region or endpoint")


def test_given_a_policy_without_metering_actions_then_the_reason_lists_the_missing_permissions(
        metering_emulator: EmulatorServer) -> None:
    metering_emulator.admin.load_fixtures(default_fixtures(
        deniedOperations=["ResolveCustomer", "BatchMeterUsage", "MeterUsage", "RegisterUsage"]))
    result = verifyCredentials.check(a_config(metering_emulator.url))
    assert result["verified"] is False and result["reason"].startswith("Missing permission")
    for action in ("ResolveCustomer", "BatchMeterUsage", "MeterUsage", "RegisterUsage"):
        assert f"aws-marketplace:{action}" in result["reason"]
    assert calls(metering_emulator) == {"ResolveCustomer": 1, "BatchMeterUsage": 1, "MeterUsage": 1,
                                        "RegisterUsage": 1}
    assert metering_emulator.admin.records()["records"] == []


def test_given_a_policy_that_only_allows_register_usage_then_its_probe_verifies(
        metering_emulator: EmulatorServer) -> None:
    """A paid-container credential may allow only RegisterUsage ("keep only the actions your flows use"):
    a product code that cannot exist is refused only after authorisation, and nothing is registered."""
    metering_emulator.admin.load_fixtures(default_fixtures(
        deniedOperations=["ResolveCustomer", "BatchMeterUsage", "MeterUsage"]))
    result = verifyCredentials.check(a_config(metering_emulator.url))
    assert result["verified"] is True and "Allowed to call aws-marketplace:RegisterUsage" in result["reason"]
    assert calls(metering_emulator)["RegisterUsage"] == 1
    assert metering_emulator.admin.stats()["operations"]["RegisterUsage"]["errors"] == {
        "InvalidProductCodeException": 1}


def test_given_access_keys_allowed_nothing_where_register_usage_refuses_them_then_missing_permission(
        metering_emulator: EmulatorServer) -> None:
    """PlatformNotSupportedException (long-term keys, not a container) may come before the IAM check: it proves
    no permission, so keys allowed none of the four actions are not verified."""
    metering_emulator.admin.load_fixtures(default_fixtures(
        deniedOperations=["ResolveCustomer", "BatchMeterUsage", "MeterUsage", "RegisterUsage"]))
    metering_emulator.admin.set_config(refuse_long_term_keys=True)
    result = verifyCredentials.check(a_config(metering_emulator.url))
    assert result["verified"] is False and result["reason"].startswith("Missing permission"), result
    assert "could not check aws-marketplace:RegisterUsage (AWS takes it only from ECS, EKS" in result["reason"]
    assert metering_emulator.admin.stats()["operations"]["RegisterUsage"]["errors"] == {
        "PlatformNotSupportedException": 1}


def test_given_an_operation_disabled_in_the_region_then_the_next_probe_decides(
        metering_emulator: EmulatorServer) -> None:
    """DisabledApiException ("The API is disabled in the Region") says nothing of the credentials."""
    metering_emulator.admin.set_config(disabled_operations=["ResolveCustomer"])
    result = verifyCredentials.check(a_config(metering_emulator.url))
    assert result["verified"] is True, result
    assert result["reason"] == ("Allowed to call aws-marketplace:BatchMeterUsage; could not check "
                                "aws-marketplace:ResolveCustomer (disabled in the region).")
    # MeterUsage cannot be disabled (the model lists DisabledApiException for the other three only): denied
    metering_emulator.admin.load_fixtures(default_fixtures(deniedOperations=["MeterUsage"]))
    metering_emulator.admin.set_config(disabled_operations=["ResolveCustomer", "BatchMeterUsage", "RegisterUsage"])
    result = verifyCredentials.check(a_config(metering_emulator.url))
    assert result["verified"] is False, result
    assert ("allows none of aws-marketplace:MeterUsage; could not check "
                                     "aws-marketplace:ResolveCustomer (disabled in the region), "
                                     "aws-marketplace:BatchMeterUsage (disabled in the region), "
                                     "aws-marketplace:RegisterUsage (disabled in the region).") in result["reason"]
    assert metering_emulator.admin.records()["records"] == []


def test_given_a_policy_that_only_allows_batch_metering_then_verified_with_a_note(
        metering_emulator: EmulatorServer) -> None:
    metering_emulator.admin.load_fixtures(default_fixtures(deniedOperations=["ResolveCustomer", "MeterUsage"]))
    result = verifyCredentials.check(a_config(metering_emulator.url))
    assert result["verified"] is True and "Allowed to call aws-marketplace:BatchMeterUsage" in result["reason"]
    assert "not allowed: aws-marketplace:ResolveCustomer." in result["reason"]
    assert calls(metering_emulator) == {"ResolveCustomer": 1, "BatchMeterUsage": 1}
    assert metering_emulator.admin.records()["records"] == []  # nothing metered


def test_given_a_policy_that_only_allows_meter_usage_then_the_dry_run_probe_verifies(
        metering_emulator: EmulatorServer) -> None:
    metering_emulator.admin.load_fixtures(default_fixtures(deniedOperations=["ResolveCustomer", "BatchMeterUsage"]))
    result = verifyCredentials.check(a_config(metering_emulator.url))
    assert result["verified"] is True and "Allowed to call aws-marketplace:MeterUsage" in result["reason"]
    assert "aws-marketplace:ResolveCustomer, aws-marketplace:BatchMeterUsage" in result["reason"]
    assert calls(metering_emulator) == {"ResolveCustomer": 1, "BatchMeterUsage": 1, "MeterUsage": 1}
    assert metering_emulator.admin.records()["records"] == []


def test_given_denied_probes_then_what_they_send_can_meter_nothing() -> None:
    """The probes' bodies as sent (the emulator keeps no request bodies): an empty batch, a DryRun."""
    denied = Canned(400, json.dumps({"__type": "AccessDeniedException", "message": "User: u is not authorized"}
                                    ).encode(), {"x-amzn-RequestId": "r"})
    dry = Canned(412, b'{"__type":"DryRunOperation","message":"would succeed"}', {"x-amzn-RequestId": "r"})
    with ScriptedServer([denied, denied, dry]) as server:
        result = verifyCredentials.check(a_config(server.url))
        bodies = [json.loads(body) for _, body in server.requests]
    assert result["verified"] is True and "aws-marketplace:MeterUsage" in result["reason"]
    assert bodies[1] == {"UsageRecords": []}
    assert bodies[2]["DryRun"] is True


def test_given_incomplete_credentials_then_not_verified_without_a_call() -> None:
    result = verifyCredentials.check({"accessKeyId": "AKIAEMULATOR0000TEST"})
    assert result == {"verified": False,
                      "reason": "Incomplete credentials: Secret Access Key (secretAccessKey): is required"}


def test_given_a_field_breaking_its_rule_then_the_reason_names_it_by_its_label_in_the_form() -> None:
    result = verifyCredentials.check({"accessKeyId": "AKIAEMULATOR0000TEST", "secretAccessKey": "s",
                                      "endpointUrl": "https://example.com/path"})
    assert result["verified"] is False and result["reason"].startswith(
        "Invalid credentials: Endpoint URL (endpointUrl): must be an http(s) URL of a host, without path")


def test_given_the_sailors_service_mode_then_it_finds_and_runs_this_verifier(
        metering_emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch) -> None:
    from elasticio_sailor.service import execute

    root = Path(__file__).resolve().parents[2]
    monkeypatch.chdir(root.parent)  # the sailor joins ELASTICIO_COMPONENT_PATH onto the working directory
    env = {"ELASTICIO_API_URI": "http://127.0.0.1:9", "ELASTICIO_API_USERNAME": "u", "ELASTICIO_API_KEY": "k",
           "ELASTICIO_COMPONENT_PATH": root.name}
    good = execute("verifyCredentials", dict(env, ELASTICIO_CFG=json.dumps(a_config(metering_emulator.url))))
    bad = execute("verifyCredentials", dict(env, ELASTICIO_CFG=json.dumps(
        a_config(metering_emulator.url, secretAccessKey="wrong/secret/0000000000000000000000"))))
    assert good == {"verified": True}
    assert bad["verified"] is False and bad["reason"].startswith("Bad credentials")


def test_given_the_sailors_service_mode_then_a_refused_source_key_is_named_and_its_secret_is_not(
        metering_emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """The sailor masks the secrets of the verified config in the reason, not the access key's id, which the
    reason names so the user knows which key to fix (sailor/README.md: keys naming an identifier)."""
    from elasticio_sailor.service import execute

    import lib.credentials
    from spec.support.identity import SELLER_ROLE, SOURCE_KEY, identity_fixtures

    metering_emulator.admin.load_fixtures(identity_fixtures())
    root = Path(__file__).resolve().parents[2]
    monkeypatch.chdir(root.parent)
    wrong = "wrong/source/secret/000000000000000000000"
    cfg = {"authMode": "assumeRole", "region": "us-east-1", "accessKeyId": SOURCE_KEY, "secretAccessKey": wrong,
           "roleArn": SELLER_ROLE, "externalId": "x9", "stsEndpointUrl": metering_emulator.url,
           "endpointUrl": metering_emulator.url}
    env = {"ELASTICIO_API_URI": "http://127.0.0.1:9", "ELASTICIO_API_USERNAME": "u", "ELASTICIO_API_KEY": "k",
           "ELASTICIO_COMPONENT_PATH": root.name, "ELASTICIO_CFG": json.dumps(cfg)}
    lib.credentials.clear_cache()
    try:
        result = execute("verifyCredentials", env)
    finally:
        lib.credentials.clear_cache()
    assert result["verified"] is False
    assert result["reason"].startswith(f"Bad credentials: STS did not accept access key {SOURCE_KEY},"), result
    assert wrong not in json.dumps(result)
