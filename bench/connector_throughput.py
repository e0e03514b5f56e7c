"""Benchmark: records per second for one 10,000-record Batch Meter Usage message with the emulator's
quotas on (10 calls/s per account), against the ceiling of 10 calls/s x 25 records = 250 records/s.

The message goes through the action (validation, chunking, pacing, retries) exactly as in a flow.
The emulator runs in its own process with enough customers for 10,000 distinct records.

    python bench/connector_throughput.py [--records 10000]

Goal: >= 95 % of the ceiling and no throttling surfaced. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from metering_emulator.testing import DEFAULT_FIXTURES

from actions import batchMeterUsage
from bench.connector_common import ACCESS_KEY, PRODUCT, SECRET_KEY, EmulatorProcess

DIMENSIONS = ["users", "api_calls", "storage_gb"]
CEILING = 10 * 25


class Ctx:
    """The step context the sailor would pass."""

    logger = None
    message_id = None

    def emit(self, event: str, payload: Any) -> None:
        raise AssertionError("summary mode emits nothing itself")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=10_000)
    args = parser.parse_args()
    count = args.records
    fixtures = copy.deepcopy(DEFAULT_FIXTURES)
    fixtures["products"][0]["customers"] = [{"customerIdentifier": f"cust-{i:05d}"} for i in range(count // 3 + 1)]
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(fixtures, handle)
    with EmulatorProcess("--fixtures", handle.name) as emu:
        now = int(time.time() // 3600 * 3600)
        records = [{"Timestamp": now, "CustomerIdentifier": f"cust-{i // 3:05d}", "Dimension": DIMENSIONS[i % 3],
                    "Quantity": i % 100} for i in range(count)]
        cfg = {"accessKeyId": ACCESS_KEY, "secretAccessKey": SECRET_KEY, "endpointUrl": emu.url}
        start = time.perf_counter()
        out = batchMeterUsage.process(Ctx(), {"id": "bench", "body": {"ProductCode": PRODUCT,
                                                                      "UsageRecords": records}}, cfg, {})
        elapsed = time.perf_counter() - start
        with urllib.request.urlopen(f"{emu.url}/_emulator/stats") as resp:
            stats = json.load(resp)["operations"]["BatchMeterUsage"]
    Path(handle.name).unlink()
    assert out is not None
    body = out["body"]
    rate = count / elapsed
    print(f"{count} records in one message, quotas on: {elapsed:.2f} s, {stats['calls']} calls")
    print(f"throughput {rate:.1f} records/s = {rate / CEILING * 100:.1f} % of the {CEILING} records/s ceiling "
          f"(goal >= 95 %)")
    print(f"statuses {body['StatusCounts']}; throttled by the emulator: {stats['throttled']}; "
          f"errors surfaced: {0 if body['AllSucceeded'] else 'see statuses'}")


if __name__ == "__main__":
    main()
