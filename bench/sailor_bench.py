"""Node sailor 2.7.8 vs the Python sailor on the shared node-sailor harness, in one run.

For each setting the harness's ``run.sh --preload`` is run once with the Node sailor and once with
``--sailor-cmd 'python -m elasticio_sailor' --component-dir spec/sailor/components_py/echo`` (an
echo action that behaves like the harness's echo.js), alternately when ``--repeat`` > 1. The harness
queues N inputs, starts the sailor, and times the drain; this script also samples the sailor
process's resident memory (RSS, its children included) every 50 ms while it runs, and its CPU time
(user + system) per message — less sensitive than msg/s to other load on a shared machine.

Settings:
  throughput  prefetch 10, data rate limit 100000/100 ms, log level warn (issue 3's benchmark)
  defaults    the platform defaults: prefetch 1, data rate limit 10/100 ms, log level info

Printed: msg/s (drain = sailor spawn → last output; window = min(start)..max(end) headers), peak and
median RSS, Python/Node ratios (of the medians, and per back-to-back pair for msg/s, CPU per message and
peak RSS, with their medians), and Python's msg/s as a fraction of raw pika's ~6,500 msg/s.

The harness is called by path and never copied: ``--harness`` or ``$SAILOR_BENCH_HARNESS``
(default /work/shared/peers/node-sailor). Its work dir (venv, node_modules, broker data) defaults
to ``.work/sailor-bench`` in the repository and is reused between runs.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import socket
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
PY_ECHO_COMPONENT = ROOT / "spec" / "sailor" / "components_py" / "echo"
DEFAULT_HARNESS = "/work/shared/peers/node-sailor"
RAW_PIKA_MSG_S = 6500.0
SETTINGS = {
    "throughput": {"prefetch": 10, "rate_limit": 100000, "log_level": "warn"},
    "defaults": {"prefetch": 1, "rate_limit": 10, "log_level": "info"},
}


@dataclass
class RunResult:
    """One harness run of one sailor."""

    sailor: str
    setting: str
    passed: bool
    drain_msg_s: float | None
    window_msg_s: float | None
    rss_peak_mb: float | None
    rss_median_mb: float | None
    cpu_ms_per_msg: float | None
    wall_s: float
    tail: str = field(default="", repr=False)


def free_port() -> int:
    """A free 127.0.0.1 port whose +20000 twin (the Erlang distribution port) is free too."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port + 20000 >= 65536:
            continue
        with socket.socket() as s:
            s.settimeout(0.3)
            if s.connect_ex(("127.0.0.1", port + 20000)) != 0:
                return port
    raise RuntimeError("no free port pair found")


class RssSampler(threading.Thread):
    """Samples the RSS of the process named in the harness's pid file (and its children)."""

    def __init__(self, pid_file: Path, interval: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.pid_file = pid_file
        self.interval = interval
        self.samples: list[int] = []
        self.cpu_s: float | None = None
        self._halt = threading.Event()

    def run(self) -> None:
        proc: psutil.Process | None = None
        while not self._halt.is_set():
            try:
                if proc is None and self.pid_file.exists():
                    text = self.pid_file.read_text().strip()
                    if text:
                        proc = psutil.Process(int(text))
                if proc is not None:
                    family = [proc, *proc.children(recursive=True)]
                    self.samples.append(sum(p.memory_info().rss for p in family))
                    self.cpu_s = sum(sum(p.cpu_times()[:2]) for p in family)
            except (psutil.Error, ValueError, OSError):
                pass
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join(5)


def _figure(pattern: str, text: str) -> float | None:
    match = re.search(pattern, text)
    return float(match.group(1).replace(",", "")) if match else None


def run_harness(args: argparse.Namespace, sailor: str, setting: str, n: int) -> RunResult:
    """One ``run.sh --preload`` run; ``sailor`` is ``node`` or ``python``."""
    opts = SETTINGS[setting]
    workdir = Path(args.workdir).resolve()
    pid_file = workdir / "run" / "sailor.pid"
    pid_file.unlink(missing_ok=True)
    cmd = [
        "bash",
        str(Path(args.harness) / "run.sh"),
        "--workdir",
        str(workdir),
        "--port",
        str(free_port()),
        "--preload",
        "-n",
        str(n),
        "--prefetch",
        str(opts["prefetch"]),
        "--rate-limit",
        str(opts["rate_limit"]),
        "--log-level",
        str(opts["log_level"]),
    ]
    if sailor == "python":
        sailor_cmd = f"{shlex.quote(args.python)} -m elasticio_sailor"
        cmd += ["--sailor-cmd", sailor_cmd, "--component-dir", str(PY_ECHO_COMPONENT)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("ELASTICIO_")}
    if sailor == "python":
        # A deployed image ships compiled bytecode (the Dockerfile runs compileall). The harness points
        # PYTHONPYCACHEPREFIX into its work dir, where nothing is compiled yet, so compile the sailor's
        # imports there once before timing instead of charging ~0.3 s of compilation to every run.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        warm_bytecode_cache(args.python, workdir / "pycache", env)
    sampler = RssSampler(pid_file)
    sampler.start()
    t0 = time.monotonic()
    try:
        proc = subprocess.run(
            cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=args.timeout, check=False
        )
        out = proc.stdout.decode(errors="replace")
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"").decode(errors="replace") + "\nTIMEOUT"
    finally:
        sampler.stop()
    wall = time.monotonic() - t0
    mb = [s / 2**20 for s in sampler.samples]
    return RunResult(
        sailor=sailor,
        setting=setting,
        passed="RESULT: PASS" in out,
        drain_msg_s=_figure(r"preloaded queue drained\s*:\s*([\d,.]+) msg/s", out),
        window_msg_s=_figure(r"sailor processing window\s*:\s*([\d,.]+) msg/s", out),
        rss_peak_mb=max(mb) if mb else None,
        rss_median_mb=statistics.median(mb) if mb else None,
        cpu_ms_per_msg=sampler.cpu_s * 1000 / n if sampler.cpu_s else None,
        wall_s=wall,
        tail="\n".join(out.splitlines()[-25:]),
    )


def warm_bytecode_cache(python: str, prefix: Path, env: dict[str, str]) -> None:
    """Import what the Python sailor loads at start, writing the bytecode under ``prefix``."""
    code = "import elasticio_sailor.cli, elasticio_sailor.step, elasticio_sailor.amqp, elasticio_sailor.executor"
    subprocess.run([python, "-c", code], env={**env, "PYTHONPYCACHEPREFIX": str(prefix)},
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120, check=False)


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def _fmt(value: float | None, spec: str = ",.0f") -> str:
    return "n/a" if value is None else format(value, spec)


def _ratio(py: float | None, node: float | None) -> str:
    return "n/a" if py is None or not node else f"{py / node:.2f}x"


@dataclass
class Row:
    """Median figures of one sailor in one setting."""

    runs: int
    passed: bool
    drain_msg_s: float | None
    window_msg_s: float | None
    rss_peak_mb: float | None
    rss_median_mb: float | None
    cpu_ms_per_msg: float | None
    all_drain_msg_s: list[float | None]
    all_cpu_ms_per_msg: list[float | None]
    all_rss_peak_mb: list[float | None]


def _paired(ours: list[float | None], peer: list[float | None]) -> list[float]:
    """Ratios ours/peer of back-to-back pairs (run i of each sailor) where both figures exist."""
    return [o / p for o, p in zip(ours, peer, strict=False) if o is not None and p]


def summarise(results: list[RunResult], sailor: str, setting: str) -> Row:
    runs = [r for r in results if r.sailor == sailor and r.setting == setting]
    return Row(
        runs=len(runs),
        passed=bool(runs) and all(r.passed for r in runs),
        drain_msg_s=_median([r.drain_msg_s for r in runs]),
        window_msg_s=_median([r.window_msg_s for r in runs]),
        rss_peak_mb=_median([r.rss_peak_mb for r in runs]),
        rss_median_mb=_median([r.rss_median_mb for r in runs]),
        cpu_ms_per_msg=_median([r.cpu_ms_per_msg for r in runs]),
        all_drain_msg_s=[r.drain_msg_s for r in runs],
        all_cpu_ms_per_msg=[r.cpu_ms_per_msg for r in runs],
        all_rss_peak_mb=[r.rss_peak_mb for r in runs],
    )


def report(results: list[RunResult], setting: str, n: int) -> dict[str, object]:
    """Print the figures of one setting; return them as a dict."""
    node, py = summarise(results, "node", setting), summarise(results, "python", setting)
    opts = SETTINGS[setting]
    print(
        f"\n== {setting}: {n} preloaded messages, prefetch {opts['prefetch']}, "
        f"data rate limit {opts['rate_limit']}/100 ms, log level {opts['log_level']}"
    )
    print(
        f"{'':8} {'result':6} {'drain msg/s':>12} {'window msg/s':>13} {'RSS peak MB':>12} {'RSS med MB':>11}"
        f" {'CPU ms/msg':>11}"
    )
    for name, row in (("node", node), ("python", py)):
        print(
            f"{name:8} {'PASS' if row.passed else 'FAIL':6} {_fmt(row.drain_msg_s):>12} "
            f"{_fmt(row.window_msg_s):>13} {_fmt(row.rss_peak_mb, '.1f'):>12} {_fmt(row.rss_median_mb, '.1f'):>11}"
            f" {_fmt(row.cpu_ms_per_msg, '.3f'):>11}"
        )
    ratios = {
        "drain": _ratio(py.drain_msg_s, node.drain_msg_s),
        "window": _ratio(py.window_msg_s, node.window_msg_s),
        "rss_peak": _ratio(py.rss_peak_mb, node.rss_peak_mb),
        "rss_median": _ratio(py.rss_median_mb, node.rss_median_mb),
        "cpu_per_msg": _ratio(py.cpu_ms_per_msg, node.cpu_ms_per_msg),
    }
    paired = _paired(py.all_drain_msg_s, node.all_drain_msg_s)
    paired_cpu = _paired(py.all_cpu_ms_per_msg, node.all_cpu_ms_per_msg)
    paired_rss = _paired(py.all_rss_peak_mb, node.all_rss_peak_mb)
    if paired:
        ratios["drain_paired_median"] = f"{statistics.median(paired):.2f}x"
    if paired_cpu:
        ratios["cpu_paired_median"] = f"{statistics.median(paired_cpu):.2f}x"
    if paired_rss:
        ratios["rss_peak_paired_median"] = f"{statistics.median(paired_rss):.2f}x"
    print(
        f"Python/Node: msg/s {ratios['drain']} (drain), {ratios['window']} (window); "
        f"RSS {ratios['rss_peak']} (peak), {ratios['rss_median']} (median); CPU per message {ratios['cpu_per_msg']}"
    )
    for label, values, key in (("drain msg/s", paired, "drain_paired_median"),
                               ("CPU per message", paired_cpu, "cpu_paired_median"),
                               ("RSS peak", paired_rss, "rss_peak_paired_median")):
        if len(values) > 1:
            print(f"Python/Node {label} per back-to-back pair: " + ", ".join(f"{r:.2f}x" for r in values)
                  + f" (median {ratios[key]})")
    summary: dict[str, object] = {"setting": setting, "messages": n, **opts}
    if py.drain_msg_s is not None:
        fraction = py.drain_msg_s / RAW_PIKA_MSG_S
        summary["python_fraction_of_raw_pika"] = round(fraction, 3)
        print(f"Python drain msg/s as a fraction of raw pika ({RAW_PIKA_MSG_S:,.0f} msg/s): {fraction:.2f}")
    summary.update(node=asdict(node), python=asdict(py), ratios=ratios)
    return summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument(
        "--harness",
        default=os.environ.get("SAILOR_BENCH_HARNESS", DEFAULT_HARNESS),
        help="the node-sailor harness folder (env SAILOR_BENCH_HARNESS)",
    )
    ap.add_argument(
        "--workdir", default=str(ROOT / ".work" / "sailor-bench"), help="harness work dir (reused)"
    )
    ap.add_argument("--python", default=sys.executable, help="Python that has elasticio_sailor installed")
    ap.add_argument("-n", type=int, default=10000, help="messages for the throughput setting")
    ap.add_argument("--defaults-n", type=int, default=2000, help="messages for the defaults setting")
    ap.add_argument("--repeat", type=int, default=1, help="runs per sailor and setting (medians reported)")
    ap.add_argument("--only", choices=sorted(SETTINGS), help="run one setting only")
    ap.add_argument("--timeout", type=float, default=600, help="seconds per harness run")
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args(argv)
    if not (Path(args.harness) / "run.sh").is_file():
        print(f"no run.sh in harness folder {args.harness}", file=sys.stderr)
        return 2

    results: list[RunResult] = []
    summaries = []
    for setting in [args.only] if args.only else list(SETTINGS):
        n = args.n if setting == "throughput" else args.defaults_n
        for i in range(args.repeat):
            for sailor in ("node", "python"):
                r = run_harness(args, sailor, setting, n)
                results.append(r)
                print(
                    f"[{setting} #{i + 1}] {sailor}: {'PASS' if r.passed else 'FAIL'} drain "
                    f"{_fmt(r.drain_msg_s)} msg/s, window {_fmt(r.window_msg_s)} msg/s, "
                    f"RSS peak {_fmt(r.rss_peak_mb, '.1f')} MB, CPU {_fmt(r.cpu_ms_per_msg, '.3f')} ms/msg "
                    f"({r.wall_s:.0f}s)",
                    flush=True,
                )
                if not r.passed:
                    print(r.tail, flush=True)
        summaries.append(report(results, setting, n))
    if args.json:
        Path(args.json).write_text(json.dumps(summaries, indent=2) + "\n")
    return 0 if all(r.passed for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
