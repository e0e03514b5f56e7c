"""Every line a component logs reaches the platform's log as one redacted JSON line.

The probe component (``components_py/logging_probe``) logs the usual Python way — module loggers
(``logging.getLogger(__name__)``), the root logger, ``warnings.warn``, ``log.exception`` — never through
``self.logger``. Before the sailor put its handler on the root logger, its INFO lines were dropped and its
warnings printed by logging's last-resort handler as plain, unredacted text on stderr.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from spec.sailor.helpers import HERE, FakeApi, PlatformSide, SailorProc, sailor_env, step_doc

PROBE = HERE / "components_py" / "logging_probe"
SECRET = "probe-secret-key-0099"


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every non-empty line parsed as JSON: a plain-text line fails the test with the line shown."""
    out = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except ValueError:
            raise AssertionError(f"a log line is not JSON: {line!r}") from None
    return out


def by_msg(lines: list[dict[str, Any]], prefix: str) -> list[dict[str, Any]]:
    return [x for x in lines if str(x.get("msg", "")).startswith(prefix)]


def check_probe_lines(lines: list[dict[str, Any]], i: int, *, debug: bool, message_id: str | None) -> None:
    """The probe's lines for message ``i``: levels, logger names, context, redaction."""
    expect = {  # msg prefix → (bunyan level, logger)
        f"probe module info {i}": (30, "probe_lib.work"),
        f"probe module warning {i}": (40, "probe_lib.work"),
        f"probe root info {i}": (30, "root"),
        f"probe root error {i}": (50, "root"),
        f"probe module exception {i}": (50, "probe_lib.work"),
    }
    for prefix, (level, logger) in expect.items():
        [line] = by_msg(lines, prefix)
        assert (line["name"], line["level"], line["logger"], line["v"]) == ("component", level, logger, 0), line
        assert "hostname" in line and "pid" in line and line["time"].endswith("Z")
        if message_id is not None:
            assert line["messageId"] == message_id, line
    [warning] = [x for x in lines if f"probe python warning {i}" in str(x.get("msg"))]
    assert (warning["level"], warning["logger"]) == (40, "py.warnings")
    [exc] = by_msg(lines, f"probe module exception {i}")
    assert exc["err"] == {"name": "ValueError", "message": f"probe failure {i} for key ***"}
    assert by_msg(lines, f"probe module warning {i}")[0]["msg"].endswith("with key ***")
    assert len(by_msg(lines, f"probe module debug {i}")) == (1 if debug else 0)


@pytest.fixture
def probe_step(platform: PlatformSide, fake_api: FakeApi, tmp_path: Path) -> Iterator[Any]:
    procs: list[SailorProc] = []

    def start(**env: str) -> SailorProc:
        doc = step_doc(function="log", config={"apiKey": SECRET, "_account": "acc9"})
        fake_api.routes[("GET", "/v1/tasks/flow1/steps/step_2")] = [(200, doc)]
        proc = SailorProc(sailor_env(platform, fake_api, "log", **env), tmp_path / f"probe{len(procs)}.log",
                          cwd=PROBE)
        procs.append(proc)
        proc.wait_consuming(platform)
        return proc

    yield start
    for p in procs:
        p.kill()


@pytest.mark.parametrize("concurrency", ["threads", "greenlet"])
@pytest.mark.parametrize("level", ["info", "debug"])
def test_given_module_and_root_loggers_in_a_flow_step_then_every_line_is_redacted_json_with_the_message_context(
    platform: PlatformSide, probe_step: Any, concurrency: str, level: str
) -> None:
    sailor = probe_step(LOG_LEVEL=level, SAILOR_CONCURRENCY=concurrency, ELASTICIO_RABBITMQ_PREFETCH_SAILOR="2")
    ids = [platform.publish({"body": {"i": i}, "headers": {}}, {"messageId": f"probe-{i}"}) for i in (1, 2)]
    outs = platform.get("message", 2)
    assert sorted(platform.decode(o)["body"]["done"] for o in outs) == [1, 2]
    assert sailor.terminate() == 0
    text = sailor.log()
    assert SECRET not in text
    lines = json_lines(text)  # stdout and stderr of the process: nothing but JSON
    for i, mid in zip((1, 2), ids, strict=True):
        check_probe_lines(lines, i, debug=level == "debug", message_id=mid)
    [loaded] = by_msg(lines, "probe action module loaded")  # logged at import time, no message context
    assert loaded["name"] == "component" and "messageId" not in loaded
    assert by_msg(lines, "Fully initialized")[0]["name"] == "sailor"


def test_given_warn_level_then_the_components_info_lines_are_not_written(
    platform: PlatformSide, probe_step: Any
) -> None:
    sailor = probe_step(LOG_LEVEL="warn")
    platform.publish({"body": {"i": 5}, "headers": {}})
    platform.get("message")
    assert sailor.terminate() == 0
    lines = json_lines(sailor.log())
    assert by_msg(lines, "probe module warning 5") and by_msg(lines, "probe root error 5")
    assert by_msg(lines, "probe module info 5") == [] and by_msg(lines, "probe root info 5") == []


def test_given_module_loggers_in_the_local_runner_then_stderr_has_only_redacted_json_lines(tmp_path: Path) -> None:
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"apiKey": SECRET}))
    proc = subprocess.run(
        [sys.executable, "-m", "elasticio_sailor", "local", "--component", str(PROBE), "--function", "log",
         "--cfg", str(cfg), "--message", "-"],
        input=json.dumps({"id": "local-1", "body": {"i": 9}}), capture_output=True, text=True, timeout=60,
        check=False, env={**os.environ, "LOG_LEVEL": "info"},
    )
    assert proc.returncode == 0, proc.stderr
    assert [e["event"] for e in json_lines(proc.stdout)] == ["data", "end"]  # stdout: events only
    assert SECRET not in proc.stderr
    check_probe_lines(json_lines(proc.stderr), 9, debug=False, message_id="local-1")


def test_given_a_verifier_logging_through_module_loggers_in_service_mode_then_json_lines(fake_api: FakeApi) -> None:
    fake_api.routes[("POST", "/result")] = [(200, {})]
    env = {k: v for k, v in os.environ.items() if not k.startswith("ELASTICIO_")}
    env.update(ELASTICIO_CFG=json.dumps({"apiKey": SECRET}), ELASTICIO_API_URI=fake_api.url,
               ELASTICIO_API_USERNAME="u@example.com", ELASTICIO_API_KEY="platform-key-31", LOG_LEVEL="info",
               ELASTICIO_POST_RESULT_URL=fake_api.url + "/result")
    proc = subprocess.run([sys.executable, "-m", "elasticio_sailor", "service", "verifyCredentials"], cwd=PROBE,
                          env=env, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(fake_api.requests[-1].body) == {"status": "success", "data": {"verified": True}}
    lines = json_lines(proc.stdout + proc.stderr)
    assert SECRET not in proc.stdout + proc.stderr
    [info] = by_msg(lines, "probe verifier info")
    assert (info["name"], info["level"], info["msg"]) == ("component", 30, "probe verifier info with key ***")
    [warning] = by_msg(lines, "probe verifier root warning")
    assert (warning["level"], warning["logger"]) == (40, "root")
