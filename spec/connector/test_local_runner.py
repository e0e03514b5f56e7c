"""All four actions through the sailor's local runner (python -m elasticio_sailor local), on examples/."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from metering_emulator.testing import EmulatorServer

from lib.operations import OPERATIONS
from spec.connector.builders import SECRET_KEY
from spec.support.jsonschema_reference import reference_validator as validator

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def current(value: Any, now: int) -> Any:
    """The example with its timestamps made current, as scripts/demo.py does (``_hoursAgo`` honoured)."""
    if isinstance(value, dict):
        ago = int(value.get("_hoursAgo", 0) * 3600)
        return {k: now - ago if k == "Timestamp" else current(v, now) for k, v in value.items()
                if not k.startswith("_")}
    if isinstance(value, list):
        return [current(v, now) for v in value]
    return value


def run_local(tmp_path: Path, function: str, cfg: dict[str, Any],
              message: dict[str, Any]) -> tuple[int, list[dict[str, Any]], str]:
    cfg_file, msg_file = tmp_path / "cfg.json", tmp_path / f"{function}.json"
    cfg_file.write_text(json.dumps(cfg))
    msg_file.write_text(json.dumps(message))
    proc = subprocess.run([sys.executable, "-m", "elasticio_sailor", "local", "--component", str(ROOT),
                           "--function", function, "--cfg", str(cfg_file), "--message", str(msg_file)],
                          check=False, capture_output=True, text=True, timeout=120,
                          env={"LOG_LEVEL": "debug", "PATH": "/usr/bin"})
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return proc.returncode, events, proc.stdout + proc.stderr


@pytest.mark.parametrize("function", sorted(OPERATIONS))
def test_given_the_example_message_when_run_by_the_local_runner_then_data_then_end_is_emitted(
        metering_emulator: EmulatorServer, tmp_path: Path, function: str) -> None:
    cfg = dict(json.loads((EXAMPLES / "cfg.json").read_text()), endpointUrl=metering_emulator.url)
    message = current(json.loads((EXAMPLES / f"{function}.json").read_text()), int(time.time()))
    code, events, output = run_local(tmp_path, function, cfg, message)
    assert code == 0, output
    assert [e["event"] for e in events] == ["data", "end"]
    body = events[0]["payload"]["body"]
    assert not list(validator(OPERATIONS[function].out_schema).iter_errors(body))
    assert SECRET_KEY not in output
    if function == "batchMeterUsage":
        assert body["StatusCounts"] == {"Success": 4, "CustomerNotSubscribed": 1, "DuplicateRecord": 0,
                                        "TimestampOutOfBounds": 0, "Rejected": 0}
        billed = {(r["customerIdentifier"], r["dimension"]): r["quantityDecimal"]
                  for r in metering_emulator.admin.records()["records"]}
        assert billed[("cust-demo-0001", "storage_gb")] == "17.42"  # the fractional record, exactly
        assert billed[("cust-demo-0002", "users")] == "2.5"  # the record 20 hours old


def test_given_an_aws_error_when_run_by_the_local_runner_then_one_error_with_details_is_emitted(
        metering_emulator: EmulatorServer, tmp_path: Path) -> None:
    cfg = dict(json.loads((EXAMPLES / "cfg.json").read_text()), endpointUrl=metering_emulator.url)
    code, events, output = run_local(tmp_path, "resolveCustomer", cfg, {"body": {"RegistrationToken": "bogus"}})
    assert code == 1
    assert [e["event"] for e in events] == ["error", "end"]
    error = events[0]["payload"]
    assert error["name"] == "InvalidTokenException" and error["code"] == "InvalidTokenException"
    assert error["operation"] == "ResolveCustomer" and error["retryable"] is False and error["requestId"]
    assert SECRET_KEY not in output


def test_given_throttling_that_outlasts_the_retries_when_run_by_the_local_runner_then_it_rebounds(
        metering_emulator: EmulatorServer, tmp_path: Path) -> None:
    metering_emulator.admin.add_fault(type="throttle", rate=1.0, operations=["RegisterUsage"])
    cfg = dict(json.loads((EXAMPLES / "cfg.json").read_text()), endpointUrl=metering_emulator.url)
    message = json.loads((EXAMPLES / "registerUsage.json").read_text())
    code, events, output = run_local(tmp_path, "registerUsage", cfg, message)
    assert code == 75, output
    assert [e["event"] for e in events] == ["rebound", "end"]
    assert "ThrottlingException" in events[0]["payload"]["message"]
