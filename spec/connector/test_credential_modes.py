"""Credential modes end to end against the emulator over HTTP: access keys, Assume role (from access keys
and from the workload identity) and Workload identity (EKS IRSA, ECS task role, EC2 instance role), each for
all four actions; External ID right and wrong; sessions expiring in the middle of a 10,000-record batch;
MeterUsage under AWS's no-long-term-keys rule; a revoked session re-resolved once."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from elasticio_sailor import Rebound
from metering_emulator.testing import EmulatorServer

import lib.credentials
import verifyCredentials
from lib.client import MeteringClient, Settings
from lib.errors import MeteringError
from lib.resilience import Backoff
from spec.connector.builders import PRODUCT, REG_TOKEN, StepContext, a_record, hour_start, run_action, run_together
from spec.connector.scripted import Canned, DroppingServer, ScriptedServer
from spec.support.identity import (
    EXTERNAL_ID,
    SELLER_ROLE,
    SOURCE_KEY,
    SOURCE_SECRET,
    WORKLOAD_ENV_NAMES,
    WORKLOAD_ROLE,
    identity_fixtures,
    workload_env,
)
from spec.support.tls import TlsRelay, self_signed, server_context

ROOT = Path(__file__).resolve().parents[2]

# mode name -> (credential fields, workload kind of the container)
MODES: dict[str, tuple[dict[str, Any], str]] = {
    "access-keys": ({"accessKeyId": SOURCE_KEY, "secretAccessKey": SOURCE_SECRET}, "none"),
    "assume-role-from-keys": ({"authMode": "assumeRole", "accessKeyId": SOURCE_KEY, "secretAccessKey": SOURCE_SECRET,
                               "roleArn": SELLER_ROLE, "externalId": EXTERNAL_ID, "roleSessionName": "seller-test",
                               "sessionDurationSeconds": "900"}, "none"),
    "assume-role-from-irsa": ({"authMode": "assumeRole", "roleSource": "workloadIdentity", "roleArn": SELLER_ROLE,
                               "externalId": EXTERNAL_ID}, "irsa"),
    "workload-irsa": ({"authMode": "workloadIdentity"}, "irsa"),
    "workload-ecs": ({"authMode": "workloadIdentity"}, "ecs"),
    "workload-ec2": ({"authMode": "workloadIdentity"}, "ec2"),
}


@pytest.fixture
def emu(metering_emulator: EmulatorServer) -> EmulatorServer:
    metering_emulator.admin.load_fixtures(identity_fixtures())
    metering_emulator.admin.set_config(quotas=False)
    return metering_emulator


@pytest.fixture
def container(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, emu: EmulatorServer) -> Iterator[Any]:
    """Set the container's environment to one workload kind (the credential cache is cleared around it)."""

    def use(kind: str) -> dict[str, str]:
        for name in WORKLOAD_ENV_NAMES:
            monkeypatch.delenv(name, raising=False)
        env = workload_env(kind, emu.url, tmp_path)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        lib.credentials.clear_cache()
        return env

    yield use
    lib.credentials.clear_cache()


def cfg_for(mode: str, emu: EmulatorServer, **extra: Any) -> dict[str, Any]:
    fields, _ = MODES[mode]
    return {"region": "us-east-1", "endpointUrl": emu.url, "stsEndpointUrl": emu.url, **fields, **extra}


BODIES: dict[str, Any] = {
    "batchMeterUsage": lambda: {"ProductCode": PRODUCT, "UsageRecords": [a_record(dimension="storage_gb")]},
    "meterUsage": lambda: {"ProductCode": PRODUCT, "Timestamp": hour_start(), "UsageDimension": "users",
                           "UsageQuantity": 2},
    "registerUsage": lambda: {"ProductCode": PRODUCT, "PublicKeyVersion": 1},
    "resolveCustomer": lambda: {"RegistrationToken": REG_TOKEN},
}


@pytest.mark.parametrize("action", sorted(BODIES))
@pytest.mark.parametrize("mode", sorted(MODES))
def test_given_a_credential_mode_when_running_an_action_then_it_succeeds_signed_by_that_identity(
        emu: EmulatorServer, container: Any, mode: str, action: str) -> None:
    container(MODES[mode][1])
    out = run_action(action, BODIES[action](), cfg_for(mode, emu))
    body = out["body"]
    assert body.get("RequestId") or body.get("RequestIds")
    sessions = emu.admin.call("GET", "sts/sessions")["sessions"]
    expected_roles = {"access-keys": set(), "assume-role-from-keys": {SELLER_ROLE},
                      "assume-role-from-irsa": {WORKLOAD_ROLE, SELLER_ROLE}}.get(mode, {WORKLOAD_ROLE})
    assert {s["roleArn"] for s in sessions} == expected_roles
    expected_sources = {"access-keys": set(), "assume-role-from-keys": {"AssumeRole"},
                        "assume-role-from-irsa": {"AssumeRole", "AssumeRoleWithWebIdentity"},
                        "workload-irsa": {"AssumeRoleWithWebIdentity"}, "workload-ecs": {"ContainerCredentials"},
                        "workload-ec2": {"InstanceMetadata"}}[mode]
    assert {s["source"] for s in sessions} == expected_sources
    if action in ("batchMeterUsage", "meterUsage"):
        records = emu.admin.records()["records"]
        assert len(records) == 1
        signer = records[0].get("accessKeyId")
        if signer is not None:  # MeterUsage keeps the caller's key: a session of the signing role
            signing = SELLER_ROLE if mode.startswith("assume") else WORKLOAD_ROLE
            assert signer in ({s["accessKeyId"] for s in sessions if s["roleArn"] == signing} or {SOURCE_KEY})
    if action == "resolveCustomer":
        assert body["CustomerIdentifier"] == "cust-demo-0001"


def test_given_the_right_external_id_then_one_session_serves_many_calls_and_the_wrong_one_is_refused(
        emu: EmulatorServer, container: Any) -> None:
    container("none")
    for _ in range(3):
        run_action("resolveCustomer", {"RegistrationToken": REG_TOKEN}, cfg_for("assume-role-from-keys", emu))
    assert emu.admin.call("GET", "sts/sessions")["issued"] == {"AssumeRole": 1}  # cached per credential
    wrong = cfg_for("assume-role-from-keys", emu, externalId="ext-id-Wrong-0000")
    with pytest.raises(MeteringError) as info:
        run_action("batchMeterUsage", {"ProductCode": PRODUCT, "UsageRecords": [a_record()]}, wrong)
    err = info.value
    assert (err.code, err.operation, err.kind, err.retryable) == ("AccessDenied", "AssumeRole", "credentials", False)
    assert err.request_id and "External ID" in str(err)
    assert "ext-id-Wrong-0000" not in str(err) and EXTERNAL_ID not in str(err)
    assert "BatchMeterUsage" not in emu.admin.stats()["operations"]  # nothing was sent, nothing metered
    assert emu.admin.records()["records"] == []


def test_given_two_second_sessions_when_a_10000_record_batch_runs_then_sessions_rotate_and_nothing_is_billed_twice(
        emu: EmulatorServer, container: Any) -> None:
    container("none")
    doc = identity_fixtures(max_duration=2)
    customers = [f"cust-long-{i:04d}" for i in range(1000)]
    doc["products"][0]["customers"] += [{"customerIdentifier": c} for c in customers]
    emu.admin.load_fixtures(doc)
    emu.admin.set_config(quotas=False)
    records = [a_record(customer=c, dimension=d, timestamp=hour_start(-h) + 60)
               for c in customers for d in ("users", "api_calls") for h in range(5)]
    assert len(records) == 10_000
    cfg = cfg_for("assume-role-from-keys", emu, callsPerSecond="100")  # 400 calls: at least 4 s
    del cfg["sessionDurationSeconds"]  # the role's maximum (2 s) applies
    started = time.monotonic()
    out = run_action("batchMeterUsage", {"ProductCode": PRODUCT, "UsageRecords": records}, cfg)
    elapsed = time.monotonic() - started
    body = out["body"]
    assert body["StatusCounts"]["Success"] == 10_000 and body["AllSucceeded"] is True
    billed = emu.admin.records()["records"]
    assert len(billed) == 10_000 and all(r["submissions"] == 1 for r in billed)
    issued = emu.admin.call("GET", "sts/sessions")["issued"]["AssumeRole"]
    assert issued >= 3, f"{issued} session(s) for the whole {elapsed:.1f}s batch"
    stats = emu.admin.stats()["operations"]["BatchMeterUsage"]
    assert stats["calls"] == stats["succeeded"]  # the sessions were refreshed before they expired


def test_given_a_revoked_session_then_it_is_resolved_once_again_and_then_reported_as_bad_credentials(
        emu: EmulatorServer, container: Any) -> None:
    container("irsa")
    cfg = cfg_for("workload-irsa", emu)
    run_action("resolveCustomer", {"RegistrationToken": REG_TOKEN}, cfg)
    emu.admin.call("POST", "sts/revoke", {})
    run_action("resolveCustomer", {"RegistrationToken": REG_TOKEN}, cfg)  # re-resolved: a new session
    assert emu.admin.call("GET", "sts/sessions")["issued"] == {"AssumeRoleWithWebIdentity": 2}
    emu.admin.call("POST", "sts/expire", {})
    run_action("resolveCustomer", {"RegistrationToken": REG_TOKEN}, cfg)
    assert emu.admin.call("GET", "sts/sessions")["issued"] == {"AssumeRoleWithWebIdentity": 3}
    # Sessions from an STS the metering endpoint does not know (another partition's, here a second
    # emulator) are refused every time: re-resolved once, then reported as bad credentials.
    with EmulatorServer(identity_fixtures()) as other_sts:
        lib.credentials.clear_cache()
        with pytest.raises(MeteringError) as info:
            run_action("resolveCustomer", {"RegistrationToken": REG_TOKEN}, dict(cfg, stsEndpointUrl=other_sts.url))
        assert other_sts.admin.call("GET", "sts/sessions")["issued"] == {"AssumeRoleWithWebIdentity": 2}
    assert info.value.code == "UnrecognizedClientException" and info.value.kind == "credentials"
    assert not info.value.retryable and "resolving it anew" in str(info.value)
    errors = emu.admin.stats()["operations"]["ResolveCustomer"]["errors"]
    assert errors == {"UnrecognizedClientException": 3, "ExpiredTokenException": 1}  # revoked, expired, 2 foreign


def test_given_aws_rule_on_long_term_keys_then_meter_usage_is_refused_with_keys_and_accepted_with_the_workload(
        emu: EmulatorServer, container: Any) -> None:
    emu.admin.set_config(refuse_long_term_keys=True)
    container("none")
    body = BODIES["meterUsage"]()
    with pytest.raises(MeteringError) as info:
        run_action("meterUsage", body, cfg_for("access-keys", emu))
    assert info.value.code == "AccessDeniedException" and "long-term" in str(info.value)
    with pytest.raises(MeteringError) as info:
        run_action("registerUsage", BODIES["registerUsage"](), cfg_for("access-keys", emu))
    assert info.value.code == "PlatformNotSupportedException"
    for kind in ("irsa", "ecs", "ec2"):
        container(kind)
        out = run_action("meterUsage", body, cfg_for(f"workload-{kind}", emu))
        assert out["body"]["MeteringRecordId"]
        assert run_action("registerUsage", BODIES["registerUsage"](), cfg_for(f"workload-{kind}", emu))["body"][
            "Signature"]


def test_given_verify_per_mode_then_the_reason_tells_the_causes_apart_and_nothing_is_metered(
        emu: EmulatorServer, container: Any) -> None:
    ctx = StepContext()
    container("none")
    assert verifyCredentials.verify(ctx, cfg_for("assume-role-from-keys", emu)) == {"verified": True}
    wrong = verifyCredentials.verify(ctx, cfg_for("assume-role-from-keys", emu, externalId="ext-id-Wrong-0000"))
    assert wrong["verified"] is False and wrong["reason"].startswith("The role cannot be assumed")
    assert "External ID" in wrong["reason"] and "trust policy" in wrong["reason"]
    assert "ext-id-Wrong-0000" not in wrong["reason"] and EXTERNAL_ID not in wrong["reason"]
    # source keys STS does not take are bad credentials, not a trust policy that refuses the role
    for bad in ({"secretAccessKey": "y" * 40}, {"accessKeyId": "AKIAUNKNOWN000000000"}):
        refused = verifyCredentials.verify(ctx, cfg_for("assume-role-from-keys", emu, **bad))
        assert refused["verified"] is False and refused["reason"].startswith("Bad credentials: STS did not accept")
        assert "trust policy" not in refused["reason"] and "y" * 40 not in refused["reason"]
    none = verifyCredentials.verify(ctx, cfg_for("workload-irsa", emu))
    assert none["verified"] is False and none["reason"].startswith("No workload identity in this container")
    container("irsa")
    assert verifyCredentials.verify(ctx, cfg_for("workload-irsa", emu)) == {"verified": True}
    untrusted = verifyCredentials.verify(ctx, cfg_for("assume-role-from-irsa", emu, roleArn=WORKLOAD_ROLE))
    assert untrusted["verified"] is False and untrusted["reason"].startswith("The role cannot be assumed")
    doc = identity_fixtures()
    doc["roles"][1]["deniedOperations"] = ["ResolveCustomer", "BatchMeterUsage", "MeterUsage", "RegisterUsage"]
    emu.admin.load_fixtures(doc)
    emu.admin.set_config(quotas=False)
    lib.credentials.clear_cache()
    denied = verifyCredentials.verify(ctx, cfg_for("workload-irsa", emu))
    assert denied["verified"] is False and denied["reason"].startswith("Missing permission")
    assert "workload identity" in denied["reason"] and "aws-marketplace:MeterUsage" in denied["reason"]
    assert emu.admin.records()["records"] == []


@pytest.mark.parametrize(("region", "probed"), [
    ("us-gov-west-1", ["MeterUsage"]), ("us-gov-east-1", ["MeterUsage"]),
    ("cn-northwest-1", ["ResolveCustomer"]),
])
def test_given_a_region_with_some_operations_then_verify_probes_only_those_and_does_not_call_it_wrong(
        emu: EmulatorServer, container: Any, region: str, probed: list[str]) -> None:
    container("ec2")
    emu.admin.set_config(region=region)
    result = verifyCredentials.check(cfg_for("workload-ec2", emu, region=region))
    assert result["verified"] is True, result
    assert f"Region {region} offers only" in result["reason"]
    assert sorted(emu.admin.stats()["operations"]) == probed
    assert emu.admin.records()["records"] == []


def test_given_the_access_key_mode_then_botocore_is_not_imported_and_the_role_modes_import_it(
        emu: EmulatorServer, tmp_path: Path) -> None:
    script = (
        "import sys\n"
        "from lib.client import Settings, MeteringClient\n"
        "from lib.operations import OPERATIONS\n"
        f"c = MeteringClient(Settings.from_cfg({{'accessKeyId': {SOURCE_KEY!r}, 'secretAccessKey': "
        f"{SOURCE_SECRET!r}, 'endpointUrl': {emu.url!r}}}))\n"
        "c.call(OPERATIONS['resolveCustomer'], {'RegistrationToken': 'emu-demo-registration-token-0001'})\n"
        "print('botocore' in sys.modules)\n"
        f"c = MeteringClient(Settings.from_cfg({{'authMode': 'assumeRole', 'accessKeyId': {SOURCE_KEY!r}, "
        f"'secretAccessKey': {SOURCE_SECRET!r}, 'roleArn': {SELLER_ROLE!r}, 'externalId': {EXTERNAL_ID!r}, "
        f"'endpointUrl': {emu.url!r}, 'stsEndpointUrl': {emu.url!r}}}))\n"
        "c.call(OPERATIONS['resolveCustomer'], {'RegistrationToken': 'emu-demo-registration-token-0001'})\n"
        "print('botocore' in sys.modules)\n"
    )
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HOME": str(tmp_path),
           "AWS_CONFIG_FILE": str(tmp_path / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "True"]


@pytest.mark.parametrize("source", ["sts", "container"])
def test_given_the_credential_source_drops_the_connection_then_it_is_retried_and_the_message_rebounded(
        emu: EmulatorServer, container: Any, monkeypatch: pytest.MonkeyPatch, source: str) -> None:
    """A connection STS or the ECS credentials endpoint closes without answering (botocore's
    ConnectionClosedError, alone or inside a CredentialRetrievalError) is transient, not bad credentials."""
    import botocore.utils

    monkeypatch.setattr(botocore.utils.ContainerMetadataFetcher, "SLEEP_TIME", 0)  # botocore's own retries
    container("none")
    sleeps: list[float] = []
    with DroppingServer() as dropping:
        if source == "sts":
            cfg = cfg_for("assume-role-from-keys", emu, stsEndpointUrl=dropping.url)
        else:
            monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", dropping.url + "/v2/credentials/task-1")
            cfg = cfg_for("workload-ecs", emu)
        client = MeteringClient(Settings.from_cfg(cfg), backoff=Backoff(base=0.01, cap=0.02, max_attempts=2),
                                sleep=sleeps.append)
        with pytest.raises(Rebound) as raised:
            run_action("resolveCustomer", {"RegistrationToken": REG_TOKEN}, cfg, client=client)
        first = dropping.connections
        client.backoff = Backoff(max_attempts=1)
        reason = verifyCredentials.check(cfg, client=client)["reason"]
    cause = raised.value.__cause__
    assert isinstance(cause, MeteringError)
    assert (cause.code, cause.operation, cause.kind, cause.retryable) == ("ConnectionError", "credentials",
                                                                         "transient", True)
    where = "STS" if source == "sts" else "the container credentials endpoint"
    assert f"could not reach {where} (ConnectionClosedError)" in cause.aws_message
    assert len(sleeps) == 1 and first >= 2  # resolved again on the retry
    assert reason.startswith("Could not reach STS" if source == "sts" else "Could not reach the container")
    assert "ResolveCustomer" not in emu.admin.stats()["operations"]


def test_given_the_container_endpoint_refuses_the_authorization_token_then_it_is_not_retried(
        emu: EmulatorServer, container: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Genuinely bad workload configuration stays a permanent credentials failure."""
    import botocore.utils

    monkeypatch.setattr(botocore.utils.ContainerMetadataFetcher, "SLEEP_TIME", 0)
    container("ecs")
    monkeypatch.setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", "cAuth.Wrong.Token.0000")
    cfg = cfg_for("workload-ecs", emu)
    sleeps: list[float] = []
    client = MeteringClient(Settings.from_cfg(cfg), backoff=Backoff(max_attempts=3), sleep=sleeps.append)
    with pytest.raises(MeteringError) as raised:
        run_action("resolveCustomer", {"RegistrationToken": REG_TOKEN}, cfg, client=client)
    err = raised.value
    assert (err.code, err.operation, err.kind, err.retryable) == ("CredentialRetrievalError", "credentials",
                                                                  "credentials", False)
    assert "workload identity could not be read" in str(err) and sleeps == []
    assert "cAuth.Wrong.Token.0000" not in str(err)


def test_given_sts_unavailable_when_verifying_an_assume_role_then_try_again_later_not_the_trust_policy(
        emu: EmulatorServer, container: Any) -> None:
    """An STS outage (503 on every attempt) is not a trust policy refusing the role."""
    container("none")
    down = b"<ErrorResponse><Error><Code>ServiceUnavailable</Code><Message>down</Message></Error></ErrorResponse>"
    with ScriptedServer([Canned(503, down, {"Content-Type": "text/xml"})]) as sts:
        result = verifyCredentials.verify(StepContext(), cfg_for("assume-role-from-keys", emu, stsEndpointUrl=sts.url))
    assert result["verified"] is False and result["reason"].startswith("Could not verify now: STS did not answer")
    assert "trust policy" not in result["reason"]
    assert emu.admin.records()["records"] == []


def test_given_a_session_revoked_under_8_calls_in_flight_then_it_is_resolved_once_not_once_per_call(
        emu: EmulatorServer, container: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """8 messages in flight when the role session is revoked: one re-resolution is enough (all calls were
    refused for the same stale session); each thread's unconditional reset() throws away the session another
    thread just fetched, so STS is called up to once per thread."""
    container("none")
    cfg = cfg_for("assume-role-from-keys", emu, callsPerSecond="100")
    run_action("resolveCustomer", {"RegistrationToken": REG_TOKEN}, cfg)  # session 1
    assert emu.admin.call("GET", "sts/sessions")["issued"] == {"AssumeRole": 1}
    emu.admin.call("POST", "sts/revoke", {})
    # AWS answers after a round trip (the emulator's latency fault acts only after authentication): every
    # exchange takes 300 ms, so the 8 refused calls overlap, as prefetch 8 against AWS would
    exchange = MeteringClient._exchange

    def slow(self: Any, prep: Any) -> Any:
        time.sleep(0.3)
        return exchange(self, prep)

    monkeypatch.setattr(MeteringClient, "_exchange", slow)
    results = run_together(lambda _i: run_action("resolveCustomer", {"RegistrationToken": REG_TOKEN}, cfg))
    assert not [r for r in results if isinstance(r, BaseException)], results
    issued = emu.admin.call("GET", "sts/sessions")["issued"]["AssumeRole"]
    assert issued == 2, f"{issued - 1} AssumeRole calls to replace one revoked session"


@pytest.mark.parametrize("where", ["step", "AWS_ENDPOINT_URL_STS"])
def test_given_a_proxy_in_the_environment_then_a_loopback_sts_endpoint_is_still_reached_directly(
        emu: EmulatorServer, container: Any, monkeypatch: pytest.MonkeyPatch, where: str) -> None:
    """As the metering endpoint: an STS on this machine (an emulator, a local forwarder) is never sent through
    HTTP(S)_PROXY, whether the step or botocore's variable names it (README: Network)."""
    container("none")
    dead = "http://127.0.0.1:9"  # the discard port: a proxy that refuses every connection
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(name, dead)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    cfg = cfg_for("assume-role-from-keys", emu)
    if where != "step":
        del cfg["stsEndpointUrl"]
        monkeypatch.setenv(where, emu.url)
    out = run_action("resolveCustomer", {"RegistrationToken": REG_TOKEN}, cfg)
    assert out["body"]["RequestId"]
    assert emu.admin.call("GET", "sts/sessions")["issued"] == {"AssumeRole": 1}


def test_given_configured_endpoint_urls_ignored_then_sts_at_its_aws_address_still_goes_through_the_proxy(
        emu: EmulatorServer, container: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A loopback AWS_ENDPOINT_URL that botocore is told to ignore is not the STS endpoint: the regional one
    is, and it is reached through the proxy the environment names."""
    import socket
    import threading

    container("none")
    proxy = socket.create_server(("127.0.0.1", 0))
    asked: list[bytes] = []

    stop = threading.Event()

    def serve() -> None:  # records each request line, then hangs up (no internet here anyway); bounded: 30 s
        proxy.settimeout(0.2)
        for _ in range(150):
            if stop.is_set():
                return
            try:
                conn, _addr = proxy.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                asked.append(conn.recv(4096).split(b"\r\n", 1)[0])

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    url = f"http://127.0.0.1:{proxy.getsockname()[1]}"
    for name in ("HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.setenv(name, url)
    for name in ("NO_PROXY", "no_proxy", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", emu.url)
    monkeypatch.setenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true")
    cfg = cfg_for("assume-role-from-keys", emu)
    del cfg["stsEndpointUrl"]
    client = MeteringClient(Settings.from_cfg(cfg), backoff=Backoff(max_attempts=1), sleep=lambda _s: None)
    try:
        verified = verifyCredentials.check(cfg, client=client)
    finally:
        stop.set()
        server.join(10)
        proxy.close()
        lib.credentials.clear_cache()
    assert verified["verified"] is False
    assert asked and asked[0].startswith(b"CONNECT sts.us-east-1.amazonaws.com:443"), asked
    assert emu.admin.call("GET", "sts/sessions")["issued"] == {}


@pytest.mark.parametrize("variable", ["AWS_CA_BUNDLE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"])
def test_given_a_ca_bundle_variable_then_sts_is_verified_with_that_bundle_as_the_metering_endpoint_is(
        emu: EmulatorServer, container: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, variable: str) -> None:
    container("none")
    for name in ("AWS_CA_BUNDLE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    cert_file, key_file = self_signed(tmp_path)
    monkeypatch.setenv(variable, str(cert_file))
    relay = TlsRelay(int(emu.url.rsplit(":", 1)[1]), server_context(cert_file, key_file))
    try:
        cfg = cfg_for("assume-role-from-keys", emu, stsEndpointUrl=relay.url)
        out = run_action("resolveCustomer", {"RegistrationToken": REG_TOKEN}, cfg)
    finally:
        relay.close()
    assert out["body"]["RequestId"] and relay.served >= 1
    assert emu.admin.call("GET", "sts/sessions")["issued"] == {"AssumeRole": 1}
