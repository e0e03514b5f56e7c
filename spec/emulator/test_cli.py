"""The ``metering-emulator`` command and ``python -m metering_emulator``: first line, fixtures, faults, SIGTERM."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from spec.emulator.support import PRODUCT, client, now
from spec.support.emulator import EmulatorExited, EmulatorProcess


def running(workdir: Path, *args: str, module: bool = False) -> EmulatorProcess:
    """The emulator started by its console script (or ``python -m`` with ``module``) on a free port."""
    return EmulatorProcess(workdir, extra_args=args, console_script=not module)


def test_given_the_console_script_when_started_on_port_0_then_it_serves_and_stops_cleanly_on_sigterm(
        tmp_path: Path) -> None:
    with running(tmp_path) as emu:
        assert emu.command()[0].endswith("/metering-emulator")  # the installed console script itself
        assert urllib.request.urlopen(emu.url + "/_emulator/health").status == 200
        assert client(emu).resolve_customer(RegistrationToken="emu-demo-registration-token-0001")["ProductCode"]
        assert emu.terminate() == 0
        assert "stopped" in emu.output()


def test_given_python_dash_m_with_options_then_they_apply(tmp_path: Path) -> None:
    with running(tmp_path, "--no-quotas", "--meter-usage-window-hours", "24", "--batch-meter-usage-window-hours", "30",
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


def test_given_the_deprecated_single_window_option_then_it_sets_both_windows(tmp_path: Path) -> None:
    with running(tmp_path, "--timestamp-window-hours", "9", module=True) as emu:
        config = emu.admin.config()
        assert (config["meterUsageWindowHours"], config["batchMeterUsageWindowHours"]) == (9, 9)


def test_given_a_start_up_clock_then_the_month_end_cut_off_applies_at_that_time_over_http(tmp_path: Path) -> None:
    # 06:01 UTC on 1 December: November's records are out of bounds, SigV4 still uses the real time
    with running(tmp_path, "--no-quotas", "--clock", "2026-12-01T06:01:00Z", module=True) as emu:
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
    with running(tmp_path / "emulator", "--fixtures", str(path),
                 "--fault", "error500:count=1,operations=BatchMeterUsage") as emu:
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
def test_given_bad_arguments_then_exit_2_with_a_clear_message(tmp_path: Path, args: list[str], message: str) -> None:
    with pytest.raises(EmulatorExited) as exited:
        running(tmp_path, *args, module=True).start()
    assert exited.value.returncode == 2
    assert message in exited.value.stderr


def test_given_requests_then_the_log_names_them_without_secrets(tmp_path: Path) -> None:
    with running(tmp_path) as emu:
        c = client(emu)
        c.resolve_customer(RegistrationToken="emu-demo-registration-token-0001")
        with pytest.raises(ClientError):
            client(emu, secret_key="guess").resolve_customer(RegistrationToken="x")
        emu.terminate()
        log = emu.log()
    assert "InvalidSignatureException" in log and '"POST /" 200' in log
    for secret in ("emulator/Secret+Key/DoNotUseInProduction00", "DoNotUseInProduction", "guess", "Signature="):
        assert secret not in log
