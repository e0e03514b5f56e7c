"""Benchmark: several processes sharing one account's quota, with no configuration, on the flow harness.

The emulator's quotas are on and counted per account and region, as AWS counts them: 10 Batch Meter
Usage calls/s x 25 records = a ceiling of 250 records/s for the whole account. Runs:

* ``ours x3``: three Python sailor replicas of step 2 (our connector), default credentials (no
  ``callsPerSecond``): each process adapts its pace to the throttling answers (lib/resilience.py); step 2
  consumes with the platform's default prefetch of 1 (``--prefetch``: with 10, each replica still holds up
  to 10 messages when the queue drains, and the replica whose window is smallest finishes them alone);
* ``boto3 x3``: the peer, in the same run: the same load (same plan, same emulator set-up) from three
  processes calling BatchMeterUsage through boto3 with ``Config(retries={"mode": "adaptive"})`` (10 threads
  each, like a replica's 10 workers); a call that fails after botocore's retries is put back in the queue
  and counted as a rebound;
* ``two flows``: two different flows (their own steps and queues) whose step 2 meters for the same account
  on one emulator, at once (``--flow-replicas`` replicas each);
* ``late flow``: a flow meters alone at the quota; 5 s later a second flow (a quarter of the messages)
  starts: how soon the newcomer gets records through, and at what rate while the first still runs;
* ``ours x1``: one replica alone, with its ramp-up (seconds from the first receipt until a one-second
  bucket of receipts at step 3 first reaches 90 % of the ceiling).

records/s = valid records / (last receipt - first emit) (for the peer: last completion - start);
latency = per message, step 1's emit to step 3's receipt (for the peer: start to the call's completion),
queueing included. throttled % = the emulator's throttled / all calls. Every run ends in the exact audit
(every record billed exactly once, nothing else). The pair "ours x3" / "boto3 x3" runs ``--pairs`` times
back to back; medians are printed. Prints figures and goals; asserts nothing.

    python bench/scale_out.py [--messages 250] [--pairs 3] [--flow-replicas 1] [--prefetch 1]
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import queue
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from spec.support.emulator import EmulatorProcess, op_stats
from spec.support.flow import (
    AwsCredentials,
    FlowOptions,
    MeteringFlow,
    UsagePlan,
    billed_key,
    plan_fixtures,
)
from spec.support.rabbit import RabbitBroker

CEILING = 250.0
OP = "BatchMeterUsage"


def _pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, max(0, round(p / 100 * (len(values) - 1))))]


def _progress(label: str) -> Any:
    last = [0.0]

    def show(f: MeteringFlow) -> None:
        if time.monotonic() - last[0] > 1:
            last[0] = time.monotonic()
            print(f"\r  {label}: {f.progress_line()}   ", end="", file=sys.stderr, flush=True)

    return show


def _ramp_seconds(flow: MeteringFlow) -> float | None:
    receipts = sorted(d.received_ms for v in flow.sink.values() for d in v[:1] if d.received_ms is not None)
    if not receipts:
        return None
    per_second = Counter((r - receipts[0]) // 1000 for r in receipts)
    goal = 0.9 * CEILING / 25  # messages (calls) per second
    for second in sorted(per_second):
        if per_second[second] >= goal:
            return float(second + 1)
    return None


def _flow_figures(label: str, flows: list[MeteringFlow]) -> dict[str, Any]:
    audits = [f.audit() for f in flows]
    stats = op_stats(flows[0].emulator.stats(), OP)  # one emulator: the account's calls
    emits = [a.first_emit_ms for a in audits if a.first_emit_ms is not None]
    ends = [a.last_receipt_ms for a in audits if a.last_receipt_ms is not None]
    records = sum(sum(a.expected.values()) for a in audits)
    seconds = (max(ends) - min(emits)) / 1000 if emits and ends else 0.0
    lat = [float(x) for a in audits for x in a.latencies_ms]
    return {
        "label": label,
        "records": records,
        "rps": records / seconds if seconds else 0.0,
        "p50": _pct(lat, 50),
        "p99": _pct(lat, 99),
        "calls": stats.get("calls", 0),
        "throttled": stats.get("throttled", 0),
        "rebounds": sum(f.rebounds() for f in flows),
        "errors": sum(len(f.errors) for f in flows),
        "exact": all(a.exact for a in audits),
        "ramp": _ramp_seconds(flows[0]) if len(flows) == 1 else None,
    }


def run_ours(broker: RabbitBroker, workdir: Path, messages: int, replicas: int, prefetch: int) -> dict[str, Any]:
    plan = UsagePlan.make(messages=messages, records_per_message=25)
    opts = FlowOptions(quotas=True, replicas=replicas, prefetch=prefetch,
                       step2_env={"ELASTICIO_REBOUND_INITIAL_EXPIRATION": "3000"})
    label = f"ours x{replicas}"
    with MeteringFlow(workdir, broker, plan, opts) as flow:
        flow.publish()
        flow.wait_done(timeout=600, on_progress=_progress(label))
        print(file=sys.stderr)
        return _flow_figures(label, [flow])


@contextlib.contextmanager
def _account_flows(broker: RabbitBroker, workdir: Path, plans: list[UsagePlan], replicas: int,
                   prefetch: int) -> Iterator[list[MeteringFlow]]:
    """Started flows, one per plan (their own steps and queues), whose step 2 meters for one account on
    one emulator with its quotas on; stopped on the way out."""
    creds = AwsCredentials.random()
    fixtures = plan_fixtures(plans[0], creds)
    for plan in plans[1:]:
        fixtures["products"] += plan_fixtures(plan, creds)["products"]
    emulator = EmulatorProcess(workdir / "emulator", fixtures, quotas=True).start()
    flows: list[MeteringFlow] = []
    try:
        opts = FlowOptions(quotas=True, replicas=replicas, prefetch=prefetch,
                           step2_env={"ELASTICIO_REBOUND_INITIAL_EXPIRATION": "3000"})
        for n, plan in enumerate(plans):
            flows.append(MeteringFlow(workdir / f"flow{n}", broker, plan, opts, shared=(emulator, creds)))
            flows[-1].start()
        yield flows
    finally:
        for flow in flows:
            flow.stop()
        emulator.stop()


def run_two_flows(broker: RabbitBroker, workdir: Path, messages: int, replicas: int,
                  prefetch: int) -> dict[str, Any]:
    plans = [UsagePlan.make(messages=messages // 2, records_per_message=25) for _ in range(2)]
    label = f"two flows x{replicas}"
    with _account_flows(broker, workdir, plans, replicas, prefetch) as flows:
        for flow in flows:
            flow.publish()
        for flow in flows:
            flow.wait_done(timeout=600, on_progress=_progress(label))
        print(file=sys.stderr)
        return _flow_figures(label, flows)


def run_late_flow(broker: RabbitBroker, workdir: Path, messages: int, prefetch: int,
                  delay: float = 5.0) -> dict[str, Any]:
    """A flow meters alone at the account's quota; ``delay`` s later a second flow (a quarter of the
    messages) starts. The row is both flows together; ``late`` holds the newcomer's figures: seconds from
    its publish to its first receipt at step 3, and its records/s while the first flow still ran."""
    plans = [UsagePlan.make(messages=messages, records_per_message=25),
             UsagePlan.make(messages=max(1, messages // 4), records_per_message=25)]
    with _account_flows(broker, workdir, plans, 1, prefetch) as flows:
        flows[0].publish()
        time.sleep(delay)
        published_ms = time.time() * 1000
        flows[1].publish()
        for flow in flows:
            flow.wait_done(timeout=600, on_progress=_progress("late flow"))
        print(file=sys.stderr)
        row = _flow_figures(f"late flow (+{delay:.0f} s)", flows)
        receipts = [sorted(d.received_ms for v in f.sink.values() for d in v[:1] if d.received_ms is not None)
                    for f in flows]
        first_ends = receipts[0][-1] if receipts[0] else published_ms
        overlap = [t for t in receipts[1] if t <= first_ends]
        row["late"] = {
            "first_s": (receipts[1][0] - published_ms) / 1000 if receipts[1] else None,
            "overlap_rps": len(overlap) * 25 / max(1e-9, (first_ends - published_ms) / 1000),
            "rebounds": flows[1].rebounds(),
        }
        return row


def _boto3_worker(url: str, creds: tuple[str, str], product: str, jobs: Any, done: Any, threads: int) -> None:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import ClientError

    client = boto3.client("meteringmarketplace", region_name="us-east-1", endpoint_url=url,
                          aws_access_key_id=creds[0], aws_secret_access_key=creds[1],
                          config=Config(retries={"mode": "adaptive"}, max_pool_connections=threads))

    def work() -> None:
        while True:
            try:
                job = jobs.get(timeout=2)
            except queue.Empty:
                return
            if job is None:
                return
            index, records = job
            try:
                reply = client.batch_meter_usage(ProductCode=product, UsageRecords=records)
            except ClientError:
                jobs.put(job)  # out of retries: back in the queue, as a rebound would
                done.put(("rebound", index, time.time()))
                continue
            if reply.get("UnprocessedRecords"):
                jobs.put(job)
                done.put(("rebound", index, time.time()))
                continue
            done.put(("ok", index, time.time()))

    pool = [threading.Thread(target=work) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()


def run_boto3(workdir: Path, messages: int, processes: int, threads: int = 10) -> dict[str, Any]:
    plan = UsagePlan.make(messages=messages, records_per_message=25)
    creds = AwsCredentials.random()
    plan.caller_account = creds.account_id
    emulator = EmulatorProcess(workdir / "emulator", plan_fixtures(plan, creds), quotas=True).start()
    try:
        ctx = mp.get_context("spawn")
        jobs, done = ctx.Queue(), ctx.Queue()
        wire = [[{**r, "Timestamp": r["Timestamp"]} for r in plan.records_of(i)] for i in range(messages)]
        procs = [ctx.Process(target=_boto3_worker, daemon=True,
                             args=(emulator.url, (creds.access_key_id, creds.secret_access_key),
                                   plan.product_code, jobs, done, threads)) for _ in range(processes)]
        for p in procs:
            p.start()
        time.sleep(2.0)  # let the interpreters import boto3 before the clock starts
        start = time.time()
        for i in range(messages):
            jobs.put((i, wire[i]))
        finished: dict[int, float] = {}
        rebounds = 0
        deadline = time.monotonic() + 600
        while len(finished) < messages and time.monotonic() < deadline:
            try:
                kind, index, at = done.get(timeout=5)
            except queue.Empty:
                continue
            if kind == "ok":
                finished[index] = at
            else:
                rebounds += 1
        for _ in procs:
            jobs.put(None)
        for p in procs:
            p.join(30)
        stored = [r for r in emulator.records() if r.get("productCode") == plan.product_code]
        billed = Counter(billed_key(r) for r in stored)
        stats = op_stats(emulator.stats(), OP)
    finally:
        emulator.stop()
    lat = [1000 * (t - start) for t in finished.values()]
    seconds = max(finished.values()) - start if finished else 0.0
    records = sum(plan.expected_records().values())
    return {
        "label": f"boto3 adaptive x{processes}",
        "records": records,
        "rps": records / seconds if seconds else 0.0,
        "p50": _pct(lat, 50),
        "p99": _pct(lat, 99),
        "calls": stats.get("calls", 0),
        "throttled": stats.get("throttled", 0),
        "rebounds": rebounds,
        "errors": messages - len(finished),
        "exact": billed == plan.expected_records() and len(finished) == messages,
        "ramp": None,
    }


def _line(r: dict[str, Any]) -> str:
    thr = 100 * r["throttled"] / r["calls"] if r["calls"] else 0.0
    ramp = f"{r['ramp']:.0f}s" if r.get("ramp") else "-"
    return (f"{r['label']:22} {r['records']:>7} {r['rps']:>8.1f} {100 * r['rps'] / CEILING:>6.1f}% "
            f"{r['p50'] or 0:>8.0f} {r['p99'] or 0:>8.0f} {r['calls']:>6} {r['throttled']:>6} {thr:>6.1f}% "
            f"{r['rebounds']:>8} {r['errors']:>6} {ramp:>5}  {'EXACT' if r['exact'] else 'FAILED'}")


def _median(rows: list[dict[str, Any]], key: str) -> float:
    return statistics.median(float(r[key] or 0) for r in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=250, help="messages of 25 records per run (~25 s)")
    parser.add_argument("--pairs", type=int, default=3, help="back-to-back pairs ours x3 / boto3 x3")
    parser.add_argument("--flow-replicas", type=int, default=1, help="replicas of each of the two flows")
    parser.add_argument("--prefetch", type=int, default=1,
                        help="step 2's ELASTICIO_RABBITMQ_PREFETCH_SAILOR (1, the platform's default; 10 shows the "
                             "tail of replicas that each hold prefetched messages when the queue drains)")
    parser.add_argument("--only", choices=["pairs", "flows", "late", "single"], help="run one part only")
    args = parser.parse_args()
    rows: list[dict[str, Any]] = []
    with (
        tempfile.TemporaryDirectory(prefix="scale-out-bench-") as tmp,
        RabbitBroker(Path(tmp) / "rabbit") as broker,
    ):
        n = 0
        ours3: list[dict[str, Any]] = []
        peer3: list[dict[str, Any]] = []
        if args.only in (None, "pairs"):
            for _ in range(args.pairs):
                n += 1
                ours3.append(run_ours(broker, Path(tmp) / f"run{n}", args.messages, 3, args.prefetch))
                n += 1
                peer3.append(run_boto3(Path(tmp) / f"run{n}", args.messages, 3))
                rows += [ours3[-1], peer3[-1]]
        if args.only in (None, "flows"):
            n += 1
            rows.append(run_two_flows(broker, Path(tmp) / f"run{n}", args.messages, args.flow_replicas,
                                      args.prefetch))
        if args.only in (None, "late"):
            n += 1
            rows.append(run_late_flow(broker, Path(tmp) / f"run{n}", args.messages, args.prefetch))
        if args.only in (None, "single"):
            n += 1
            rows.append(run_ours(broker, Path(tmp) / f"run{n}", args.messages, 1, args.prefetch))
    print()
    print(f"{'run':22} {'records':>7} {'rec/s':>8} {'ceil':>7} {'p50 ms':>8} {'p99 ms':>8} {'calls':>6} "
          f"{'thrott':>6} {'thr %':>7} {'rebounds':>8} {'errors':>6} {'ramp':>5}  audit")
    for r in rows:
        print(_line(r))
    for r in rows:
        if "late" in r:
            late = r["late"]
            first = f"{late['first_s']:.1f} s" if late["first_s"] is not None else "never"
            print(f"late flow: first record through {first} after its publish; "
                  f"{late['overlap_rps']:.1f} records/s while the first flow still ran "
                  f"({100 * late['overlap_rps'] / CEILING:.0f}% of {CEILING:.0f}); its rebounds {late['rebounds']}")
    if ours3 and peer3:
        print()
        for name, group in (("ours x3", ours3), ("boto3 adaptive x3", peer3)):
            thr = statistics.median(100 * r["throttled"] / max(1, r["calls"]) for r in group)
            print(f"median of {len(group)}, {name:18}: {_median(group, 'rps'):.1f} records/s "
                  f"({100 * _median(group, 'rps') / CEILING:.1f}% of {CEILING:.0f}), throttled {thr:.1f}%, "
                  f"p99 {_median(group, 'p99'):.0f} ms, rebounds {_median(group, 'rebounds'):.0f}")
        print(f"ours / boto3 adaptive: records/s {_median(ours3, 'rps') / max(1e-9, _median(peer3, 'rps')):.2f}x, "
              f"p99 latency {_median(ours3, 'p99') / max(1e-9, _median(peer3, 'p99')):.2f}x")
    print("goals: x3 and two flows >= 90% of the ceiling, throttled <= 5%, 0 rebounds, 0 errors, exact; "
          "x1 >= 95%, ramp-up within seconds; a late flow gets records through within seconds")


if __name__ == "__main__":
    main()
