"""The ``metering-emulator`` command and ``python -m metering_emulator``: first line, fixtures, faults, SIGTERM."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from metering_emulator.testing import AdminClient

from spec.emulator.support import PRODUCT, client, now


class _Running:
    def __init__(self, proc: subprocess.Popen[str], url: str, first_line: str) -> None:
        self.proc, self.url, self.first_line = proc, url, first_line
        self.admin = AdminClient(url)


def console_script(name: str) -> Path:
    """The console script installed next to this interpreter (``.venv/bin``), not looked up on ``PATH``:
    the README's ``scripts/test.sh`` runs ``.venv/bin/python`` without the venv on ``PATH``."""
    script = Path(sys.executable).parent / name
    assert script.is_file(), f"{name} is not installed next to {sys.executable} (pip install -e ./emulator)"
    return script


@contextmanager
def running(*args: str, module: bool = False) -> Iterator[_Running]:
    """Start the emulator on a free port and stop it with SIGTERM afterwards."""
    command = [sys.executable, "-m", "metering_emulator"] if module else [str(console_script("metering-emulator"))]
    proc = subprocess.Popen([*command, "--host", "127.0.0.1", "--port", "0", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        m = re.search(r"http://127\.0\.0\.1:(\d+)", first)
        assert m, f"first line has no URL: {first!r} / {proc.stderr.read() if proc.stderr else ''}"
        yield _Running(proc, m.group(0), first)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)


def test_given_the_console_script_when_started_on_port_0_then_it_serves_and_stops_cleanly_on_sigterm() -> None:
    with running() as emu:
        assert urllib.request.urlopen(emu.url + "/_emulator/health").status == 200
        assert client(emu).resolve_customer(RegistrationToken="emu-demo-registration-token-0001")["ProductCode"]
        emu.proc.send_signal(signal.SIGTERM)
        assert emu.proc.wait(timeout=15) == 0
        assert emu.proc.stdout is not None and "stopped" in emu.proc.stdout.read()


def test_given_python_dash_m_with_options_then_they_apply() -> None:
    with running("--no-quotas", "--meter-usage-window-hours", "24", "--batch-meter-usage-window-hours", "30",
                 "--month-end-grace-hours", "2", "--echo", "normalised", "--token-lifetime-seconds", "60",
                 module=True) as emu:
        config = emu.admin.config()
        assert config["quotas"] is False
        assert (config["meterUsageWindowHours"], config["batchMeterUsageWindowHours"]) == (24, 30)
        assert (config["monthEndGraceHours"], config["echo"]) == (2, "normalised")
        assert config["tokenLifetimeSeconds"] == 60
        c = client(emu)
        c.meter_usage(ProductCode=PRODUCT, Timestamp=now() - 20 * 3600, UsageDimension="users")
        assert len(emu.admin.records()["records"]) == 1


def test_given_the_deprecated_single_window_option_then_it_sets_both_windows() -> None:
    with running("--timestamp-window-hours", "9", module=True) as emu:
        config = emu.admin.config()
        assert (config["meterUsageWindowHours"], config["batchMeterUsageWindowHours"]) == (9, 9)


def test_given_a_start_up_clock_then_the_month_end_cut_off_applies_at_that_time_over_http() -> None:
    # 06:01 UTC on 1 December: November's records are out of bounds, SigV4 still uses the real time
    with running("--no-quotas", "--clock", "2026-12-01T06:01:00Z", module=True) as emu:
        clock = emu.admin.clock()
        assert clock["mode"] == "set" and clock["iso"].startswith("2026-12-01T06:0")
        november = 1796083140  # 2026-11-30T23:59:00Z, 6 h 2 min before the clock
        with pytest.raises(ClientError) as info:
            client(emu).batch_meter_usage(ProductCode=PRODUCT, UsageRecords=[
                {"Timestamp": november, "CustomerIdentifier": "cust-demo-0001", "Dimension": "users",
                 "QuantityAsDecimal": "1.5"}])
        assert info.value.response["Error"]["Code"] == "TimestampOutOfBoundsException"
        assert "previous billing month" in info.value.response["Error"]["Message"]


def test_given_a_fixtures_file_and_a_fault_then_both_are_loaded(tmp_path: Path) -> None:
    fixtures: dict[str, Any] = {
        "credentials": [{"accessKeyId": "AKIAFILEFIXTURE00001", "secretAccessKey": "file/secret",
                         "accountId": "123412341234"}],
        "products": [{"productCode": "file-prod", "dimensions": ["seats"],
                      "customers": [{"customerIdentifier": "c-1"}]}],
    }
    path = tmp_path / "fixtures.json"
    path.write_text(json.dumps(fixtures), encoding="utf-8")
    with running("--fixtures", str(path), "--fault", "error500:count=1,operations=BatchMeterUsage") as emu:
        c = client(emu, access_key="AKIAFILEFIXTURE00001", secret_key="file/secret")
        records = [{"Timestamp": now(), "CustomerIdentifier": "c-1", "Dimension": "seats", "Quantity": 1}]
        with pytest.raises(ClientError) as info:
            c.batch_meter_usage(ProductCode="file-prod", UsageRecords=records)
        assert info.value.response["Error"]["Code"] == "InternalServiceErrorException"
        assert c.batch_meter_usage(ProductCode="file-prod", UsageRecords=records)["Results"][0]["Status"] == "Success"
        assert emu.admin.fixtures()["credentials"][0]["secretAccessKey"] == "***"


@pytest.mark.parametrize(("args", "message"), [
    (["--fixtures", "/nonexistent/fixtures.json"], "cannot read fixtures"),
    (["--fault", "explode"], "fault type must be one of"),
    (["--timestamp-window-hours", "-1"], "must not be negative"),
    (["--clock", "yesterday"], "ISO 8601"),
])
def test_given_bad_arguments_then_exit_2_with_a_clear_message(args: list[str], message: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "metering_emulator", "--port", "0", *args],
                          check=False, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert message in proc.stderr


def test_given_requests_then_the_log_names_them_without_secrets() -> None:
    with running() as emu:
        c = client(emu)
        c.resolve_customer(RegistrationToken="emu-demo-registration-token-0001")
        with pytest.raises(ClientError):
            client(emu, secret_key="guess").resolve_customer(RegistrationToken="x")
        emu.proc.send_signal(signal.SIGTERM)
        emu.proc.wait(timeout=15)
        assert emu.proc.stderr is not None
        log = emu.proc.stderr.read()
    assert "InvalidSignatureException" in log and '"POST /" 200' in log
    for secret in ("emulator/Secret+Key/DoNotUseInProduction00", "DoNotUseInProduction", "guess", "Signature="):
        assert secret not in log
