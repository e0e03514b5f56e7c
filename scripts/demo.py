"""Runs the four actions against a local emulator and shows what they emit.

Started by scripts/demo.sh. The sample messages live in examples/; their timestamps are set to the
current time here, because the metering API only accepts usage from the last few hours.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
STEPS = [
    ("resolveCustomer", "Resolve Customer: turn a SaaS registration token into a customer"),
    ("batchMeterUsage", "Batch Meter Usage: report SaaS usage for several customers at once (decimals, 24 h window)"),
    ("meterUsage", "Meter Usage: report one dimension for the calling account (AMI/containers)"),
    ("registerUsage", "Register Usage: check entitlement of a paid container and get a signed token"),
]


def start_emulator() -> tuple[subprocess.Popen[str], str]:
    errors = tempfile.TemporaryFile(mode="w+")  # its log: shown only if it does not start
    proc = subprocess.Popen(
        [sys.executable, "-m", "metering_emulator", "--host", "127.0.0.1", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=errors,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.search(r"http://127\.0\.0\.1:\d+", line)
    if not match:
        proc.terminate()
        proc.wait(10)
        errors.seek(0)
        tail = "".join(errors.readlines()[-10:])
        raise SystemExit(f"the emulator did not start: {line!r}\n{tail}")
    errors.close()
    return proc, match.group(0)


def with_current_timestamps(value: object, now: int) -> object:
    """Every "Timestamp" member set to ``now`` (epoch seconds) less its sibling ``_hoursAgo``, recursively.

    Members starting with an underscore (``_hoursAgo``, ``_comment``) are the demo's own and are dropped.
    """
    if isinstance(value, dict):
        hours = value.get("_hoursAgo", 0)
        seconds = int(hours * 3600) if isinstance(hours, (int, float)) else 0
        return {k: (now - seconds if k == "Timestamp" else with_current_timestamps(v, now))
                for k, v in value.items() if not k.startswith("_")}
    if isinstance(value, list):
        return [with_current_timestamps(v, now) for v in value]
    return value


def run_action(function: str, cfg_file: Path, message: dict[str, object], work: Path) -> int:
    msg_file = work / f"{function}.message.json"
    msg_file.write_text(json.dumps(message, indent=2))
    cmd = [
        sys.executable, "-m", "elasticio_sailor", "local",
        "--component", str(ROOT), "--function", function,
        "--cfg", str(cfg_file), "--message", str(msg_file),
    ]
    env = dict(os.environ, LOG_LEVEL=os.environ.get("LOG_LEVEL", "warn"))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, check=False)
    print("  input body:")
    print(indent(json.dumps(message["body"], indent=2)))
    for line in proc.stdout.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("payload") is None:
            print(f"  emitted {event.get('event')}")  # end: the message is done (the platform acks it)
            continue
        print(f"  emitted {event.get('event')}:")
        print(indent(json.dumps(event["payload"], indent=2)))
    if proc.returncode not in (0,):
        print(f"  (exit code {proc.returncode})")
        if proc.stderr.strip():
            print(indent(proc.stderr.strip()[-2000:]))
    return proc.returncode


def indent(text: str, by: str = "    ") -> str:
    return "\n".join(by + line for line in text.splitlines())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.parse_args()
    proc, url = start_emulator()
    failures = 0
    try:
        print(f"Emulator of the AWS Marketplace Metering Service running at {url}\n")
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            cfg = json.loads((EXAMPLES / "cfg.json").read_text())
            cfg["endpointUrl"] = url
            cfg_file = work / "cfg.json"
            cfg_file.write_text(json.dumps(cfg))
            now = int(time.time())
            for function, title in STEPS:
                print(f"== {title}")
                message = json.loads((EXAMPLES / f"{function}.json").read_text())
                if function == "batchMeterUsage":
                    print("  (record 1 is fractional usage, QuantityAsDecimal 17.42; record 2 happened 20 hours ago)")
                if function in ("meterUsage", "registerUsage"):
                    print("  (signed with the demo's access keys, which the emulator accepts by default; AWS takes "
                          "this action only from the workload's own role: README, Credentials)")
                message = with_current_timestamps(message, now)
                assert isinstance(message, dict)
                message.setdefault("id", str(uuid.uuid4()))
                if run_action(function, cfg_file, message, work) != 0:
                    failures += 1
                print()
        no_proxy = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never a proxy
        with no_proxy.open(f"{url}/_emulator/records") as resp:
            records = json.load(resp)
        print("== What the emulator billed (GET /_emulator/records, summary)")
        print(indent(json.dumps(records.get("summary", records), indent=2)))
    finally:
        proc.terminate()
        proc.wait(10)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
