"""The local runner CLI: one function, one message, events as JSON lines, exit codes 0/1/2/75."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from spec.sailor.helpers import STEPS


def local(tmp_path: Path, function: str, message: Any = None, *, stdin: Any = None, snapshot: Any = None,
          cfg: Any = None, extra: tuple[str, ...] = ()) -> tuple[int, list[dict[str, Any]], str]:
    cfg_file = tmp_path / "cfg.json"
    cfg_file.write_text(json.dumps({"apiKey": "local-secret-123"} if cfg is None else cfg))
    args = [sys.executable, "-m", "elasticio_sailor", "local", "--component", str(STEPS), "--function", function,
            "--cfg", str(cfg_file), *extra]
    if message is not None:
        (tmp_path / "msg.json").write_text(json.dumps(message))
        args += ["--message", str(tmp_path / "msg.json")]
    if stdin is not None:
        args += ["--message", "-"]
    if snapshot is not None:
        (tmp_path / "snap.json").write_text(json.dumps(snapshot))
        args += ["--snapshot", str(tmp_path / "snap.json")]
    proc = subprocess.run(args, input=None if stdin is None else json.dumps(stdin), capture_output=True, text=True,
                          timeout=60, check=False)
    return proc.returncode, [json.loads(line) for line in proc.stdout.splitlines()], proc.stderr


def test_given_returning_action_when_run_locally_then_data_and_end_lines_exit_0(tmp_path: Path) -> None:
    code, events, _ = local(tmp_path, "echo", {"body": {"a": "ü"}})
    assert code == 0
    assert events == [{"event": "data", "payload": {"body": {"a": "ü"}}}, {"event": "end", "payload": None}]


def test_given_message_on_stdin_without_id_or_headers_when_run_then_uuid_and_empty_headers(tmp_path: Path) -> None:
    code, events, _ = local(tmp_path, "inspect", stdin={"body": {"x": 1}}, snapshot={"n": 4})
    assert code == 0
    got = events[0]["payload"]["body"]
    assert uuid.UUID(got["msg"]["id"]).version == 4
    assert got["msg"]["headers"] == {}
    assert got["messageId"] == got["msg"]["id"]
    assert got["snapshot"] == {"n": 4}
    assert got["cfg"] == {"apiKey": "local-secret-123"}


def test_given_raising_action_when_run_then_error_line_and_exit_1(tmp_path: Path) -> None:
    code, events, _ = local(tmp_path, "throw", {"body": {"who": "x"}})
    assert code == 1
    assert [e["event"] for e in events] == ["error", "end"]
    assert events[0]["payload"]["name"] == "QuotaExceeded"
    assert events[0]["payload"]["code"] == "Q1"


def test_given_rebound_when_run_then_exit_75(tmp_path: Path) -> None:
    code, events, _ = local(tmp_path, "rebound", {"body": {}})
    assert code == 75
    assert [e["event"] for e in events] == ["rebound", "end"]
    assert events[0]["payload"]["message"] == "try later"


def test_given_snapshot_events_when_run_then_each_event_printed_in_order(tmp_path: Path) -> None:
    ops = [{"event": "snapshot", "payload": {"a": 1}}, {"event": "updateSnapshot", "payload": {"b": 2}}]
    code, events, _ = local(tmp_path, "snapshots", {"body": {"ops": ops}}, snapshot={"z": 0})
    assert code == 0
    assert [e["event"] for e in events] == ["snapshot", "updateSnapshot", "data", "end"]
    assert events[2]["payload"]["body"]["snapshot"] == {"z": 0}


def test_given_trigger_when_run_then_new_message_shape(tmp_path: Path) -> None:
    code, events, _ = local(tmp_path, "tick")
    assert code == 0
    data = events[0]["payload"]
    assert data["body"] == {"tick": 1} and data["headers"] == {"x-custom": "1"}


def test_given_component_logging_cfg_when_run_then_logs_on_stderr_redacted(tmp_path: Path) -> None:
    code, events, stderr = local(tmp_path, "logs_secrets", {"body": {}}, cfg={"token": "tok-LOCAL-SECRET"})
    assert code == 0
    assert [e["event"] for e in events] == ["data", "end"]
    assert "cfg is" in stderr
    assert "tok-LOCAL-SECRET" not in stderr


def test_given_a_declared_password_field_with_any_name_when_run_then_its_value_is_redacted(tmp_path: Path) -> None:
    # spec/sailor/components/steps/component.json declares `pwd` a PasswordFieldView: a name the secret-name
    # pattern does not know and a value under 8 characters, so only the declaration can mask it
    code, _, stderr = local(tmp_path, "logs_secrets", {"body": {}}, cfg={"pwd": "hunt3r7"})
    assert code == 0 and "cfg is" in stderr
    assert "hunt3r7" not in stderr


@pytest.mark.parametrize("function, extra", [("nope", ()), ("echo", ("--bogus",))])
def test_given_usage_error_when_run_then_exit_2(tmp_path: Path, function: str, extra: tuple[str, ...]) -> None:
    code, events, _ = local(tmp_path, function, {"body": {}}, extra=extra)
    assert code == 2
    assert events == []


def test_given_unreadable_message_file_when_run_then_exit_2(tmp_path: Path) -> None:
    code, _, stderr = local(tmp_path, "echo", extra=("--message", str(tmp_path / "absent.json")))
    assert code == 2
    assert "cannot read message" in stderr
