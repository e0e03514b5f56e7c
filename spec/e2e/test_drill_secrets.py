"""Drill: no secret anywhere — every log line of every process and every message on every queue is
scanned for the AWS secret key, the session token, the message crypto password and the platform API key.

The run exercises the paths that tend to leak: temporary credentials (session token), debug logging in
every sailor, invalid messages (error messages with errorInput), throttling, 500s and dropped
connections (retry logging).
"""

from __future__ import annotations

import json
import re

from spec.e2e.conftest import MakeFlow
from spec.support.flow import UsagePlan, scan_files, scan_queues


def test_no_secret_in_any_log_line_or_queued_message(make_flow: MakeFlow) -> None:
    plan = UsagePlan.make(messages=150, records_per_message=5, invalid_every=10)
    flow = make_flow(plan, temporary_credentials=True, log_level="debug")
    flow.emulator.add_fault(type="throttle", rate=0.2)
    flow.emulator.add_fault(type="error500", rate=0.05)
    flow.emulator.add_fault(type="drop", rate=0.02)
    flow.publish()
    flow.wait_done(timeout=300)
    audit = flow.audit()
    assert audit.exact, audit.problems()
    needles = flow.secrets()
    assert set(needles) == {"secretAccessKey", "sessionToken", "cryptoPassword", "apiKey"}
    # the secrets were really in play: the connector signed with the session token, the sailors decrypted
    assert flow.step2.config["sessionToken"] == needles["sessionToken"]
    flow.stop()  # flush and close every log before reading it
    lines, in_logs = scan_files([*flow.log_files(), flow.sink_path], needles)
    assert lines > 500  # debug logs of three sailors, the emulator log and the sink file were read
    assert in_logs == []
    scanned, in_queues = scan_queues(flow, needles)
    # every data message of steps 1 and 2 (collector copies) and every error message was scanned
    assert scanned >= 2 * plan.messages
    assert in_queues == []
    # The connector logs with logging.getLogger(__name__) (lib/client.py, lib/batch.py): its retry lines
    # (throttled → the pacer is penalised) and debug lines reach the step's log as JSON lines, like every
    # other line of the Python step's log — none is plain text outside the redacting formatter.
    retries: list[dict[str, object]] = []
    client_debug = 0
    for proc in flow.step2_procs():
        for raw in proc.log_text().splitlines():
            if not raw.strip():
                continue
            line = json.loads(raw)  # raises on a plain-text line
            assert line["v"] == 0 and "level" in line and "msg" in line, line
            if line.get("logger") == "lib.client":
                if re.search(r"attempt \d+ failed with \w+ \(request id .*\); retrying in", str(line["msg"])):
                    retries.append(line)
                client_debug += line["level"] == 20
    assert any("Throttl" in str(r["msg"]) for r in retries), "no throttling retry line in step 2's log"
    assert all(r["name"] == "component" and r["level"] == 30 for r in retries)
    assert client_debug > 0
    # the scanner does find a secret where one is: the emulator's fixtures file holds the AWS ones
    _, control = scan_files([flow.emulator.workdir / "fixtures.json"], needles)
    assert {c.split(" ")[0] for c in control} == {"secretAccessKey", "sessionToken"}
