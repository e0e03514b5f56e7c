"""Benchmark: CPU time per call of the connector's client vs botocore's client, same emulator, same calls.

The emulator runs in its own process, so ``time.process_time`` here counts only the client side:
serialising, signing, HTTP, parsing. Client-side pacing is switched off for both (quotas off too).

    python bench/connector_cpu.py [--calls 300] [--rounds 5]

Goal: ratio connector/botocore <= 0.5. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent.parent))

import botocore.session
from botocore.config import Config

from bench.connector_common import ACCESS_KEY, PRODUCT, SECRET_KEY, TOKEN, EmulatorProcess
from lib.client import MeteringClient, Settings
from lib.operations import OPERATIONS
from lib.resilience import Pacer


def cpu_per_call(fn: Callable[[], Any], calls: int) -> float:
    """CPU seconds per call over one block of ``calls`` calls."""
    start = time.process_time()
    for _ in range(calls):
        fn()
    return (time.process_time() - start) / calls


def paired(mine: Callable[[], Any], peer: Callable[[], Any], calls: int, rounds: int) -> tuple[float, float]:
    """Medians over ``rounds`` blocks, ours and the peer's alternating, after a warm-up of both."""
    for _ in range(20):
        mine()
        peer()
    ours: list[float] = []
    theirs: list[float] = []
    for _ in range(rounds):  # alternate so drift in machine load hits both alike
        ours.append(cpu_per_call(mine, calls))
        theirs.append(cpu_per_call(peer, calls))
    return statistics.median(ours), statistics.median(theirs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with EmulatorProcess("--no-quotas") as emu:
        settings = Settings.from_cfg({"accessKeyId": ACCESS_KEY, "secretAccessKey": SECRET_KEY,
                                      "endpointUrl": emu.url})
        ours = MeteringClient(settings, pacer_for=lambda op: Pacer(1e9))
        theirs = botocore.session.get_session().create_client(
            "meteringmarketplace", region_name="us-east-1", endpoint_url=emu.url,
            aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
            config=Config(retries={"mode": "standard", "max_attempts": 1}))
        now = int(time.time() // 3600 * 3600)
        records = [{"Timestamp": now, "CustomerIdentifier": f"cust-demo-000{1 + i % 2}", "Dimension": "users",
                    "Quantity": 1} for i in range(25)]
        cases: list[tuple[str, Callable[[], Any], Callable[[], Any]]] = [
            ("ResolveCustomer",
             lambda: ours.call(OPERATIONS["resolveCustomer"], {"RegistrationToken": TOKEN}),
             lambda: theirs.resolve_customer(RegistrationToken=TOKEN)),
            ("MeterUsage",
             lambda: ours.call(OPERATIONS["meterUsage"], {"ProductCode": PRODUCT, "Timestamp": now,
                                                          "UsageDimension": "users", "UsageQuantity": 1,
                                                          "ClientToken": "bench-token"}),
             lambda: theirs.meter_usage(ProductCode=PRODUCT, Timestamp=now, UsageDimension="users",
                                        UsageQuantity=1, ClientToken="bench-token")),
            ("BatchMeterUsage x25",
             lambda: ours.call(OPERATIONS["batchMeterUsage"], {"ProductCode": PRODUCT, "UsageRecords": records}),
             lambda: theirs.batch_meter_usage(ProductCode=PRODUCT, UsageRecords=records)),
        ]
        print(f"CPU time per call, client side only ({args.calls} calls x {args.rounds} rounds, ours and botocore "
              f"alternating, median; emulator {emu.url})")
        print(f"{'operation':22} {'connector':>12} {'botocore':>12} {'ratio':>7}")
        ratios = []
        for name, mine, peer in cases:
            a, b = paired(mine, peer, args.calls, args.rounds)
            ratios.append(a / b)
            print(f"{name:22} {a * 1e6:10.0f}us {b * 1e6:10.0f}us {a / b:7.2f}")
        print(f"{'overall (geo mean)':22} {'':>12} {'':>12} "
              f"{(ratios[0] * ratios[1] * ratios[2]) ** (1 / 3):7.2f}   goal <= 0.50")


if __name__ == "__main__":
    main()
