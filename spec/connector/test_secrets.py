"""Secrets (secret key, session token) never appear in logs at any level, emitted messages or errors."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from elasticio_sailor.messages import format_error
from metering_emulator.testing import EmulatorServer

import verifyCredentials
from lib.redact import SecretFilter
from spec.connector.builders import (
    PRODUCT,
    REG_TOKEN,
    SESSION_TOKEN,
    TEMP_ACCESS_KEY,
    TEMP_SECRET_KEY,
    StepContext,
    a_config,
    a_record,
    hour_start,
    run_action,
)

WRONG_SECRET = "Wrong+Secret/ForTheScan/abcdefghijklmnop"


class Capture(logging.Handler):
    """Keeps every formatted record, tracebacks included."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def captured() -> Iterator[Capture]:
    handler = Capture()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


def windows(secret: str, size: int = 10) -> list[str]:
    return [secret[i:i + size] for i in range(len(secret) - size + 1)]


def test_given_every_path_at_debug_then_no_secret_substring_leaks(
        metering_emulator: EmulatorServer, captured: Capture) -> None:
    good = a_config(metering_emulator.url, accessKeyId=TEMP_ACCESS_KEY, secretAccessKey=TEMP_SECRET_KEY,
                    sessionToken=SESSION_TOKEN)
    bad = a_config(metering_emulator.url, accessKeyId=TEMP_ACCESS_KEY, secretAccessKey=WRONG_SECRET,
                   sessionToken=SESSION_TOKEN)
    outputs: list[Any] = []
    ctx = StepContext()
    metering_emulator.admin.add_fault(type="throttle", count=1, operations=["ResolveCustomer"])
    metering_emulator.admin.add_fault(type="error500", count=1, operations=["RegisterUsage"])
    scenarios: list[Callable[[], Any]] = [
        lambda: run_action("resolveCustomer", {"RegistrationToken": REG_TOKEN}, good, ctx=ctx),
        lambda: run_action("registerUsage", {"ProductCode": PRODUCT, "PublicKeyVersion": 1}, good, ctx=ctx),
        lambda: run_action("meterUsage", {"ProductCode": PRODUCT, "Timestamp": hour_start(),
                                          "UsageDimension": "users"}, good, ctx=ctx),  # not entitled: error
        lambda: run_action("batchMeterUsage", {"ProductCode": PRODUCT, "UsageRecords": [
            a_record(), a_record(timestamp=hour_start(-20))]}, dict(good, emitPerRecord=True), ctx=ctx),
        lambda: run_action("batchMeterUsage", {"UsageRecords": [{"Timestamp": "x"}]}, good, ctx=ctx),
        lambda: run_action("resolveCustomer", {"RegistrationToken": REG_TOKEN}, bad, ctx=ctx),
        lambda: run_action("resolveCustomer", {"RegistrationToken": REG_TOKEN}, dict(bad, region="nowhere"), ctx=ctx),
        lambda: run_action("resolveCustomer", {"RegistrationToken": REG_TOKEN},
                           dict(bad, endpointUrl="http://example.com"), ctx=ctx),
        lambda: verifyCredentials.verify(ctx, bad),
        lambda: verifyCredentials.verify(ctx, good),
    ]
    for scenario in scenarios:
        try:
            outputs.append(scenario())
        except Exception as err:  # noqa: BLE001 - every error is part of the scan
            outputs += [str(err), repr(err), format_error(err), getattr(err, "error_details", None)]
    outputs += [payload for _, payload in ctx.events]
    text = "\n".join(captured.lines) + "\n" + json.dumps(outputs, default=repr)
    assert "ThrottlingException" in text and "InvalidSignatureException" in text  # the scan saw the failures
    assert len(captured.lines) >= 10 and any("DEBUG" in line for line in captured.lines)
    for secret in (TEMP_SECRET_KEY, WRONG_SECRET, SESSION_TOKEN):
        leaked = [w for w in windows(secret) if w in text]
        assert not leaked, f"secret fragment leaked: {leaked[:1]}"


def test_given_a_log_call_that_formats_a_secret_then_the_filter_masks_it(captured: Capture) -> None:
    logger = logging.getLogger("spec.secrets.filter")
    guard = SecretFilter()
    guard.add([TEMP_SECRET_KEY, "abc"])  # too short to mask
    logger.addFilter(guard)
    try:
        logger.warning("cfg was %s and %r", {"secretAccessKey": TEMP_SECRET_KEY}, "abc")
    finally:
        logger.removeFilter(guard)
    line = captured.lines[-1]
    assert TEMP_SECRET_KEY not in line and "***" in line and "'abc'" in line


def test_given_the_role_modes_at_debug_then_no_session_credential_token_or_external_id_leaks(
        metering_emulator: EmulatorServer, captured: Capture, monkeypatch: pytest.MonkeyPatch,
        tmp_path: Any) -> None:
    import lib.credentials
    from spec.support.identity import (
        CONTAINER_AUTH,
        EXTERNAL_ID,
        SELLER_ROLE,
        SOURCE_KEY,
        SOURCE_SECRET,
        WEB_TOKEN,
        WORKLOAD_ENV_NAMES,
        identity_fixtures,
        workload_env,
    )

    emu = metering_emulator
    emu.admin.load_fixtures(identity_fixtures())
    base = {"region": "us-east-1", "endpointUrl": emu.url, "stsEndpointUrl": emu.url}
    assume = {**base, "authMode": "assumeRole", "accessKeyId": SOURCE_KEY, "secretAccessKey": SOURCE_SECRET,
              "roleArn": SELLER_ROLE, "externalId": EXTERNAL_ID}
    wrong_id = "ext-id-Wrong-Secret-42"
    ctx = StepContext()
    outputs: list[Any] = []
    frozen: list[Any] = []

    def in_container(kind: str) -> None:
        for name in WORKLOAD_ENV_NAMES:
            monkeypatch.delenv(name, raising=False)
        for name, value in workload_env(kind, emu.url, tmp_path).items():
            monkeypatch.setenv(name, value)
        lib.credentials.clear_cache()

    scenarios: list[tuple[str, Callable[[], Any]]] = [
        ("none", lambda: run_action("resolveCustomer", {"RegistrationToken": REG_TOKEN}, assume, ctx=ctx)),
        ("none", lambda: run_action("resolveCustomer", {"RegistrationToken": REG_TOKEN},
                                    dict(assume, externalId=wrong_id), ctx=ctx)),
        ("none", lambda: verifyCredentials.verify(ctx, dict(assume, externalId=wrong_id))),
        ("irsa", lambda: run_action("batchMeterUsage", {"ProductCode": PRODUCT, "UsageRecords": [a_record()]},
                                    dict(base, authMode="workloadIdentity"), ctx=ctx)),
        ("irsa", lambda: verifyCredentials.verify(ctx, dict(base, authMode="workloadIdentity"))),
        ("ecs", lambda: run_action("registerUsage", {"ProductCode": PRODUCT, "PublicKeyVersion": 1},
                                   dict(base, authMode="workloadIdentity"), ctx=ctx)),
        ("ec2", lambda: run_action("meterUsage", {"ProductCode": PRODUCT, "Timestamp": hour_start(),
                                                  "UsageDimension": "users"}, dict(base, authMode="workloadIdentity"),
                                   ctx=ctx)),
        ("none", lambda: verifyCredentials.verify(ctx, dict(base, authMode="workloadIdentity"))),
    ]
    for kind, scenario in scenarios:
        in_container(kind)
        try:
            outputs.append(scenario())
        except Exception as err:  # noqa: BLE001 - every error is part of the scan
            outputs += [str(err), repr(err), format_error(err), getattr(err, "error_details", None)]
        for source in lib.credentials._SOURCES.values():
            current = source._current
            if current is not None:
                frozen.append(current.get_frozen_credentials())
    lib.credentials.clear_cache()
    outputs += [payload for _, payload in ctx.events]
    text = "\n".join(captured.lines) + "\n" + json.dumps(outputs, default=repr)
    assert "AccessDenied" in text and "No workload identity" in text  # the scan saw the failures
    assert len(frozen) >= 4 and all(f.token for f in frozen)
    secrets = [EXTERNAL_ID, wrong_id, WEB_TOKEN, CONTAINER_AUTH, SOURCE_SECRET]
    secrets += [f.secret_key for f in frozen] + [f.token for f in frozen]
    for secret in secrets:
        leaked = [w for w in windows(secret) if w in text]
        assert not leaked, f"secret fragment leaked: {leaked[:1]}"
