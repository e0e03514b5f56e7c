"""Local runner: one function on one message, no broker; every emitted event printed as a JSON line.

It uses the same component loading and executor as flow-step mode (``ComponentReader``,
``TaskContext``, ``run_function``); only the event handler differs: events are printed instead of
encrypted and published. Exit codes: 0 no error, 1 an error was emitted, 2 usage error, 75 rebound.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from pathlib import Path
from typing import IO, Any

from .component import ComponentError, ComponentReader
from .crypto import dumps
from .executor import TaskContext, run_function
from .logs import REDACTOR
from .messages import format_error

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_REBOUND = 0, 1, 2, 75


class PrintingHandler:
    """Writes ``{"event": ..., "payload": ...}`` lines; keeps the snapshot like the flow step does."""

    def __init__(self, out: IO[str], snapshot: dict[str, Any]) -> None:
        self.out = out
        self.snapshot = snapshot
        self.rebounded = False
        self.events: list[str] = []

    def on_event(self, ctx: TaskContext, event: str, payload: Any) -> None:
        if event in ("error", "rebound"):
            payload = format_error(payload)
            self.rebounded = self.rebounded or event == "rebound"
        elif event == "snapshot":
            self.snapshot = payload if isinstance(payload, dict) else {}
        elif event == "updateSnapshot" and isinstance(payload, dict):
            self.snapshot = {**self.snapshot, **payload}
        self.events.append(event)
        line = dumps({"event": event, "payload": payload}).decode("utf-8")
        self.out.write(line + "\n")
        self.out.flush()


def _read_json(path: str, what: str) -> Any:
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
        return json.loads(text)
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read {what} from {path}: {type(exc).__name__}: {exc}") from None


class UsageError(Exception):
    """Bad command line or unreadable input files (exit code 2)."""


def run_local(
    component: str, function: str, cfg: dict[str, Any], message: dict[str, Any],
    snapshot: dict[str, Any] | None = None, out: IO[str] | None = None,
) -> int:
    """Run ``function`` of the component at ``component`` once; return the runner's exit code."""
    reader = ComponentReader(component)
    module = reader.load(function)
    REDACTOR.declare_component(component)  # its password fields, whatever their names and lengths
    REDACTOR.add_config(cfg)
    msg = dict(message)
    msg.setdefault("id", str(uuid.uuid4()))
    if not isinstance(msg.get("headers"), dict):
        msg["headers"] = {}
    handler = PrintingHandler(out or sys.stdout, dict(snapshot or {}))
    ctx = TaskContext(handler, message_id=msg["id"], log_context={"messageId": msg["id"]})
    run_function(module, ctx, msg, cfg, dict(snapshot or {}))
    if ctx.error_count:
        return EXIT_ERROR
    return EXIT_REBOUND if handler.rebounded else EXIT_OK


def main(argv: list[str]) -> int:
    """``local --component DIR --function NAME --cfg FILE [--message FILE|-] [--snapshot FILE]``."""
    parser = argparse.ArgumentParser(prog="elasticio-sailor local", description=__doc__)
    parser.add_argument("--component", required=True, help="component root (holds component.json)")
    parser.add_argument("--function", required=True, help="trigger or action name in component.json")
    parser.add_argument("--cfg", required=True, help="JSON file with the step configuration")
    parser.add_argument("--message", help="JSON file with the whole input message, or - for stdin")
    parser.add_argument("--snapshot", help="JSON file with the snapshot")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return EXIT_OK if exc.code == 0 else EXIT_USAGE
    try:
        cfg = _read_json(args.cfg, "cfg")
        message = _read_json(args.message, "message") if args.message else {"body": {}}
        snapshot = _read_json(args.snapshot, "snapshot") if args.snapshot else {}
        if not isinstance(cfg, dict) or not isinstance(message, dict) or not isinstance(snapshot, dict):
            raise UsageError("cfg, message and snapshot must be JSON objects")
        return run_local(args.component, args.function, cfg, message, snapshot)
    except (UsageError, ComponentError) as exc:
        sys.stderr.write(f"elasticio-sailor local: {exc}\n")
        return EXIT_USAGE
