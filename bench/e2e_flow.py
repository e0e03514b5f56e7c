"""Benchmark: the three-step flow end to end (Node export → step 2 → Node sink) on a private broker.

Step 2 is our connector in the Python sailor, and, in the same run, the comparison peer: the Node sailor
2.7.8 with an equivalent component calling the emulator through the aws-sdk npm package. For each:

* records/s end to end (valid records / (last receipt at step 3 − first emit at step 1)), with the
  emulator's AWS quotas on (ceiling 10 calls/s × 25 records = 250 records/s; goal ≥ 95 %) and off;
* p50/p99 latency per message from step 1's emit to step 3's receipt, in the bulk runs (queueing
  included) and in a paced run below capacity (one message at a time, ``--paced-rate`` per second).

Quotas on, ours runs with its default pace (the documented 10 calls/s). Quotas off stands for an account
whose quota AWS raised: ours gets ``callsPerSecond`` = ``--calls-per-second`` (default 1000) in its
credentials, so the figure is the connector's own throughput, not its default pace.

Every run also ends in the exact audit (billed exactly once, none missing). Prints figures and ratios
ours/peer; asserts nothing.

    python bench/e2e_flow.py [--messages 240] [--messages-off 3000] [--paced 60 --paced-rate 4]
                             [--calls-per-second 1000] [--modes quotas-off] [--pairs 3]
                             [--floor] [--http-client]

Every run also prints the CPU per message of step 2's sailor processes and of all the other processes of
the flow (steps 1 and 3, the emulator, the broker). Quotas off, all of them together keep the two cores
busy, so records/s goes as the inverse of their total CPU per message: the ratio ours/peer is about
(others + peer's step 2) / (others + our step 2).

``--modes`` picks the runs (comma-separated: quotas-on, quotas-off, paced; default all three);
``--pairs N`` repeats each back-to-back pair (ours, then the peer) N times and prints every pair's ratio
and their median. ``--floor`` adds, to every quotas-off pair, a run of ``bench/transport_floor``: the
Python sailor calling the emulator through ``MeteringClient.call`` alone (requests + requests-aws4auth),
without the connector's own logic, so the report splits ours' cost into the transport with the sailor
and what the connector adds. ``--http-client`` adds a run of the connector with a plain ``http.client``
exchange in place of requests' (and, with ``--floor``, of the floor): bench only, what a cheaper transport
would buy (bench/transport_floor patches the exchange in its own process).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from spec.support.emulator import op_stats
from spec.support.flow import FlowOptions, MeteringFlow, UsagePlan
from spec.support.rabbit import RabbitBroker

CEILING = 250.0
MODES = ("quotas on", "quotas off", "paced")
NAMES = {"python": "ours (Python sailor + connector)", "node": "peer (Node sailor + aws-sdk)",
         "floor": "transport floor (sailor + client only)",
         "floor-hc": "floor with http.client (not requests)",
         "ours-hc": "ours with http.client (not requests)"}
FLOOR = Path(__file__).resolve().parent / "transport_floor"
FLOORS = (("floor", "transport floor"), ("ours-hc", "ours with http.client"), ("floor-hc", "floor with http.client"))


def _cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds of a process and its live children so far (0 when it is gone)."""
    if pid is None:
        return 0.0
    try:
        proc = psutil.Process(pid)
        total = 0.0
        for one in [proc, *proc.children(recursive=True)]:
            times = one.cpu_times()
            total += times.user + times.system
        return total
    except psutil.Error:
        return 0.0


def flow_cpu(flow: MeteringFlow, broker: RabbitBroker) -> dict[str, float]:
    """CPU seconds so far of every process of the flow: step 2's sailors, steps 1 and 3, the emulator and
    the broker. The machine's two cores are shared by all of them, so when they keep it busy, records/s is
    inversely proportional to their total CPU per message (the part the two step-2s differ in is step 2's)."""
    emulator = flow.emulator.proc
    return {
        "step2": sum(_cpu_seconds(p.pid) for p in flow.step2_procs()),
        "steps 1+3": sum(_cpu_seconds(p.pid) for step in ("step_1", "step_3") for p in flow.procs.get(step, [])),
        "emulator": _cpu_seconds(emulator.pid if emulator is not None else None),
        "broker": _cpu_seconds(broker.pid),
    }


def run(
    broker: RabbitBroker,
    workdir: Path,
    step2: str,
    quotas: bool,
    messages: int,
    paced: float = 0.0,
    calls_per_second: str = "",
) -> dict[str, Any]:
    """One flow run; returns its figures. ``calls_per_second``: ours' credential field (empty = default).

    ``step2``: python (the connector), node (the peer), floor (bench/transport_floor in the Python sailor)
    floor-hc (the same with its http.client exchange instead of requests') or ours-hc (the connector's
    action over that exchange).
    """
    plan = UsagePlan.make(messages=messages, records_per_message=1 if paced else 25)
    fields = {"callsPerSecond": calls_per_second} if calls_per_second and step2 != "node" else {}
    floor = step2 in ("floor", "floor-hc", "ours-hc")
    env = {"FLOOR_TRANSPORT": "http.client"} if step2.endswith("-hc") else {}
    if step2 == "ours-hc":
        env["FLOOR_ACTION"] = "connector"
    opts = FlowOptions(step2="node" if step2 == "node" else "python", quotas=quotas, step2_fields=fields,
                       step2_dir=FLOOR if floor else None, step2_env=env)
    label = f"{step2} quotas={'on' if quotas else 'off'}{' paced' if paced else ''}"
    with MeteringFlow(workdir, broker, plan, opts) as flow:
        cpu_before = flow_cpu(flow, broker)
        if paced:
            flow.publish_paced(paced)
        else:
            flow.publish()
        last = [0.0]

        def progress(f: MeteringFlow) -> None:
            if time.monotonic() - last[0] > 1:
                last[0] = time.monotonic()
                print(f"\r  {label}: {f.progress_line()}   ", end="", file=sys.stderr, flush=True)

        flow.wait_done(timeout=900, on_progress=progress)
        cpu_after = flow_cpu(flow, broker)
        cpu = {name: cpu_after[name] - cpu_before[name] for name in cpu_after}
        print(file=sys.stderr)
        audit = flow.audit()
        stats = op_stats(flow.emulator.stats(), "BatchMeterUsage")
    return {
        "label": label,
        "records": sum(audit.expected.values()),
        "rps": audit.records_per_second() or 0.0,
        "p50": audit.percentile(50),
        "p99": audit.percentile(99),
        "exact": audit.exact,
        "calls": stats.get("calls", 0),
        "throttled": stats.get("throttled", 0),
        "errors": len(flow.errors),
        "cpu_ms": 1000 * cpu["step2"] / messages,  # step 2's CPU per message (settle time included: idle)
        "rest_ms": 1000 * (sum(cpu.values()) - cpu["step2"]) / messages,  # every other process of the flow
        "parts_ms": {name: 1000 * value / messages for name, value in cpu.items() if name != "step2"},
    }


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a and b else "n/a"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=240, help="messages of 25 records in the quotas-on run")
    parser.add_argument("--messages-off", type=int, default=3000,
                        help="messages of 25 records in the quotas-off runs: several seconds each, so that both "
                             "sides are measured in their steady state (the Node peer's JIT compiler warms up "
                             "during the first second or two; 600 messages took about a second)")
    parser.add_argument("--paced", type=int, default=60, help="messages of the paced latency run")
    parser.add_argument("--paced-rate", type=float, default=4.0, help="messages per second in the paced run")
    parser.add_argument(
        "--calls-per-second",
        default="1000",
        help="ours' callsPerSecond in the quotas-off runs (the account's quota is raised there)",
    )
    parser.add_argument("--modes", default="quotas-on,quotas-off,paced",
                        help="comma-separated runs: quotas-on, quotas-off, paced")
    parser.add_argument("--pairs", type=int, default=1, help="back-to-back pairs (ours, peer) per mode")
    parser.add_argument("--floor", action="store_true",
                        help="add a transport-floor run (bench/transport_floor) to every quotas-off pair")
    parser.add_argument("--http-client", action="store_true",
                        help="add to every quotas-off pair a run of the connector with a plain http.client "
                             "exchange instead of requests' (and of the floor, with --floor): what a cheaper "
                             "transport would buy (bench only)")
    args = parser.parse_args()
    modes = [m.strip().replace("-", " ") for m in args.modes.split(",") if m.strip()]
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        parser.error(f"unknown mode(s): {', '.join(unknown)}")
    results: dict[tuple[str, int, str], dict[str, Any]] = {}
    with (
        tempfile.TemporaryDirectory(prefix="e2e-bench-") as tmp,
        RabbitBroker(Path(tmp) / "rabbit") as broker,
    ):
        n = 0
        for mode in modes:
            for pair in range(args.pairs):
                kinds = ["python", "node"]
                if mode == "quotas off":
                    kinds[1:1] = ((["floor"] if args.floor else []) + (["ours-hc"] if args.http_client else [])
                                  + (["floor-hc"] if args.floor and args.http_client else []))
                for step2 in kinds:
                    n += 1
                    if mode == "paced":
                        res = run(broker, Path(tmp) / f"run{n}", step2, True, args.paced, paced=args.paced_rate)
                    else:
                        quotas = mode == "quotas on"
                        cps = "" if quotas else args.calls_per_second
                        count = args.messages if quotas else args.messages_off
                        res = run(broker, Path(tmp) / f"run{n}", step2, quotas, count, calls_per_second=cps)
                    results[(mode, pair, step2)] = res
    report(results, modes, args.pairs)


def report(results: dict[tuple[str, int, str], dict[str, Any]], modes: list[str], pairs: int) -> None:
    print()
    print(
        f"{'run':52} {'records':>7} {'rec/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'calls':>6} {'thrott':>6} "
        f"{'errors':>6} {'step 2':>8} {'others':>8}  audit"
    )
    for (mode, pair, step2), r in results.items():
        name = f"{NAMES[step2]}, {mode}" + (f" #{pair + 1}" if pairs > 1 else "")
        print(
            f"{name:52} {r['records']:>7} {r['rps']:>8.1f} {r['p50'] or 0:>8.0f} "
            f"{r['p99'] or 0:>8.0f} {r['calls']:>6} {r['throttled']:>6} {r['errors']:>6} "
            f"{r['cpu_ms']:>6.2f}ms {r['rest_ms']:>6.2f}ms  {'EXACT' if r['exact'] else 'FAILED'}"
        )
    print("(step 2 / others: CPU per message of step 2's sailor processes / of steps 1 and 3, the emulator and "
          "the broker)")
    for (mode, pair, step2), r in results.items():
        parts = ", ".join(f"{name} {ms:.2f}ms" for name, ms in r["parts_ms"].items())
        print(f"  others in {NAMES[step2].split(' (')[0]}, {mode}" + (f" #{pair + 1}" if pairs > 1 else "")
              + f": {parts}")
    print()
    if "quotas on" in modes:
        on = statistics.median(results[("quotas on", p, "python")]["rps"] for p in range(pairs))
        print(
            f"ours, quotas on: {on:.1f} records/s = {100 * on / CEILING:.1f}% of the {CEILING:.0f} "
            "records/s ceiling (goal >= 95%)"
        )
    for mode in modes:
        for pair in range(pairs):
            py, node = results[(mode, pair, "python")], results[(mode, pair, "node")]
            print(
                f"ours / peer, {mode}{f' pair {pair + 1}' if pairs > 1 else ''}: records/s "
                f"{ratio(py['rps'], node['rps'])}, p50 latency {ratio(py['p50'], node['p50'])}, "
                f"p99 latency {ratio(py['p99'], node['p99'])}, step 2 CPU per message "
                f"{ratio(py['cpu_ms'], node['cpu_ms'])}"
            )
            for kind, who in FLOORS:
                floor = results.get((mode, pair, kind))
                if floor is not None:
                    print(f"{who} / peer, {mode}{f' pair {pair + 1}' if pairs > 1 else ''}: records/s "
                          f"{ratio(floor['rps'], node['rps'])}, step 2 CPU per message "
                          f"{ratio(floor['cpu_ms'], node['cpu_ms'])}")
        for step2, who in (("python", "ours"), *FLOORS):
            rps = [results[(mode, p, step2)]["rps"] / results[(mode, p, "node")]["rps"]
                   for p in range(pairs) if (mode, p, step2) in results and results[(mode, p, "node")]["rps"]]
            if pairs > 1 and rps:
                print(f"{who} / peer, {mode}: median records/s ratio of {pairs} pairs {statistics.median(rps):.2f}x")


if __name__ == "__main__":
    main()
