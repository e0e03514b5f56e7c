"""The ``metering-emulator`` command: serve until SIGTERM or Ctrl-C."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from .clock import ClockError, parse_clock
from .faults import FaultSpecError, parse_cli_spec
from .fixtures import FixtureError, load_fixtures
from .server import EmulatorHTTPServer
from .state import Config, ConfigError, State


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (kept separate so the README and tests can show ``--help``)."""
    p = argparse.ArgumentParser(prog="metering-emulator",
                                description="Local AWS Marketplace Metering Service emulator (test use only).")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1, loopback)")
    p.add_argument("--port", type=int, default=0, help="port to bind; 0 picks a free port (default)")
    p.add_argument("--fixtures", help="fixtures JSON file (default: the built-in demo fixtures)")
    p.add_argument("--no-quotas", action="store_true", help="switch off the per-account request-rate quotas")
    p.add_argument("--batch-meter-usage-window-hours", type=float, default=24.0,
                   help="BatchMeterUsage timestamps are accepted while less than this many hours old "
                        "(default 24)")
    p.add_argument("--meter-usage-window-hours", type=float, default=6.0,
                   help="MeterUsage timestamps are accepted while at most this many hours old (default 6)")
    p.add_argument("--timestamp-window-hours", type=float, default=None,
                   help="deprecated alias: set both windows to the same number of hours")
    p.add_argument("--month-end-grace-hours", type=float, default=6.0,
                   help="hours into a month during which BatchMeterUsage still takes the previous month's "
                        "records (default 6: until 06:00 UTC on the 1st)")
    p.add_argument("--echo", choices=["verbatim", "normalised"], default="verbatim",
                   help="how BatchMeterUsage echoes UsageRecords (default verbatim)")
    p.add_argument("--clock", metavar="TIME",
                   help="start the usage clock at TIME (ISO 8601 UTC like 2026-12-01T05:59:00Z, or epoch "
                        "seconds); it runs on from there. SigV4 still uses the real time")
    p.add_argument("--token-lifetime-seconds", type=float, default=4 * 3600.0,
                   help="registration token lifetime (default 14400)")
    p.add_argument("--region", default="us-east-1", help="the region this endpoint serves (default us-east-1)")
    p.add_argument("--sts-default-duration-seconds", type=float, default=3600.0,
                   help="lifetime of STS, instance and container session credentials when the caller names none "
                        "(default 3600)")
    p.add_argument("--sts-min-duration-seconds", type=float, default=900.0,
                   help="smallest DurationSeconds STS accepts (AWS: 900; lower it for short test sessions)")
    p.add_argument("--refuse-long-term-keys", action="store_true",
                   help="MeterUsage refuses long-term keys (AWS's documented rule); RegisterUsage answers them "
                        "PlatformNotSupportedException (no ECS/EKS identity signed it)")
    p.add_argument("--fault", action="append", default=[], metavar="SPEC",
                   help="arm a fault: 'type[:rate=R,count=N,latencyMs=MS,operations=Op1+Op2]' or JSON")
    p.add_argument("--seed", type=int, help="seed for fault randomness")
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return p


def _instant_arg(text: str) -> str | float:
    """``--clock`` value: epoch seconds when it is a number, else ISO text."""
    try:
        return float(text)
    except ValueError:
        return text


def main(argv: Sequence[str] | None = None) -> int:
    """Run the emulator; exit 0 on SIGTERM/SIGINT, 2 on bad arguments or fixtures."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        fixtures = load_fixtures(args.fixtures)
        config = Config()
        config.update({"quotas": not args.no_quotas,
                       "batchMeterUsageWindowHours": args.batch_meter_usage_window_hours,
                       "meterUsageWindowHours": args.meter_usage_window_hours,
                       "monthEndGraceHours": args.month_end_grace_hours, "echo": args.echo,
                       "tokenLifetimeSeconds": args.token_lifetime_seconds, "region": args.region,
                       "stsDefaultDurationSeconds": args.sts_default_duration_seconds,
                       "stsMinDurationSeconds": args.sts_min_duration_seconds,
                       "refuseLongTermKeys": args.refuse_long_term_keys})
        if args.timestamp_window_hours is not None:
            config.update({"timestampWindowHours": args.timestamp_window_hours})
        faults = [parse_cli_spec(spec, i) for i, spec in enumerate(args.fault, start=1)]
        clock = parse_clock({"now": _instant_arg(args.clock)}) if args.clock is not None else None
    except (FixtureError, ConfigError, FaultSpecError, ClockError) as exc:
        print(f"metering-emulator: {exc}", file=sys.stderr)
        return 2
    try:
        httpd = EmulatorHTTPServer((args.host, args.port), State(fixtures, config, faults, args.seed, clock))
    except OSError as exc:
        print(f"metering-emulator: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 2

    def stop(signum: int, frame: FrameType | None) -> None:
        threading.Thread(target=httpd.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    host, port = str(httpd.server_address[0]), int(httpd.server_address[1])
    print(f"metering-emulator listening on http://{host}:{port} (region {args.region}, "
          f"quotas {'off' if args.no_quotas else 'on'})", flush=True)
    try:
        httpd.serve_forever(poll_interval=0.2)
    finally:
        httpd.server_close()
    print("metering-emulator stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
