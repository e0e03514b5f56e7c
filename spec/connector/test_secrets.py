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
