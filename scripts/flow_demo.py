"""The flow demo: a billing export in a Node-sailor step emits hourly usage for many customers, the
connector meters it in the Python sailor against the local emulator, a Node-sailor sink records the
results. Prints a live progress line and, at the end, the audit: every record billed exactly once,
every message delivered or on the error queue with a clear reason.

    scripts/flow-demo.sh [--messages 200] [--records 25] [--invalid-every 20] [--faults] [--quotas-off]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from spec.support.emulator import op_stats
from spec.support.flow import FlowOptions, MeteringFlow, UsagePlan, error_text
from spec.support.rabbit import RabbitBroker


def say(text: str) -> None:
    """One line of demo narration."""
    print(f"[flow-demo] {text}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=200, help="messages step 1 emits (default 200)")
    parser.add_argument("--records", type=int, default=25, help="usage records per message (default 25)")
    parser.add_argument(
        "--invalid-every", type=int, default=20, help="every n-th message is invalid (0 = none)"
    )
    parser.add_argument(
        "--faults", action="store_true", help="20%% throttling, 5%% 500s, 2%% dropped connections"
    )
    parser.add_argument(
        "--quotas-off",
        action="store_true",
        help="switch the emulator's 10 calls/s quota off and raise the connector's callsPerSecond "
        "credential to 1000 (an account whose quota AWS raised)",
    )
    parser.add_argument("--replicas", type=int, default=1, help="Python sailor replicas of step 2")
    args = parser.parse_args()

    plan = UsagePlan.make(args.messages, records_per_message=args.records, invalid_every=args.invalid_every)
    fields = {"callsPerSecond": "1000"} if args.quotas_off else {}
    opts = FlowOptions(quotas=not args.quotas_off, replicas=args.replicas, step2_fields=fields)
    with tempfile.TemporaryDirectory(prefix="flow-demo-") as tmp:
        say("starting a private RabbitMQ ...")
        with RabbitBroker(Path(tmp) / "rabbit") as broker:
            say(f"broker on {broker.url.split('@')[1]}; starting the emulator and the three steps ...")
            with MeteringFlow(Path(tmp) / "flow", broker, plan, opts) as flow:
                say(
                    f"emulator {flow.emulator.url}; step 1 Node export -> step 2 Python sailor "
                    f"batchMeterUsage x{args.replicas} -> step 3 Node sink"
                )
                if args.faults:
                    flow.emulator.add_fault(type="throttle", rate=0.20)
                    flow.emulator.add_fault(type="error500", rate=0.05)
                    flow.emulator.add_fault(type="drop", rate=0.02)
                say(
                    f"{plan.messages} messages, {plan.valid_record_count} valid records for "
                    f"{len(plan.customers)} customers x {len(plan.dimensions)} dimensions x {len(plan.hours)} hours"
                )
                start = time.monotonic()
                flow.publish()
                last = [0.0]

                def progress(f: MeteringFlow) -> None:
                    if time.monotonic() - last[0] < 0.5:
                        return
                    last[0] = time.monotonic()
                    billed = f.emulator.admin.health().get("records", 0)
                    print(
                        f"\r[flow-demo] {time.monotonic() - start:5.1f}s  delivered {len(f.sink)}  errors "
                        f"{len(f.errors)}  of {plan.messages}  records billed {billed}   ",
                        end="",
                        flush=True,
                    )

                flow.wait_done(timeout=max(300, plan.messages), on_progress=progress)
                progress_elapsed = time.monotonic() - start
                print()
                audit = flow.audit()
                stats = op_stats(flow.emulator.stats(), "BatchMeterUsage")
                say(f"done in {progress_elapsed:.1f}s")
                print()
                print(audit.table())
                print(
                    f"{'API calls / throttled / 500s+drops absorbed':<47}  {stats.get('calls')} / "
                    f"{stats.get('throttled')} / {sum(stats.get('errors', {}).values())}"
                )
                rps = audit.records_per_second()
                if rps:
                    print(f"{'records/s end to end':<47}  {rps:.1f}")
                if flow.errors:
                    print()
                    print("error queue (first 5):")
                    for i, deliveries in sorted(flow.errors.items())[:5]:
                        print(f"  message {i}: {error_text(deliveries[0].message)[:150]}")
    return 0 if audit.exact else 1


if __name__ == "__main__":
    raise SystemExit(main())
