"""The metering emulator as a separate process: the suite's one way to spawn it.

``EmulatorProcess`` runs ``python -m metering_emulator`` (or, with ``console_script=True``, the installed
``metering-emulator`` command next to this interpreter) on a free loopback port, reads the URL from the
first stdout line, and stops it with SIGTERM to its process group (SIGKILL after 15 s). Its stdout and
stderr go to two files in ``workdir`` (``emulator.out``, ``emulator.log``), so a long run never blocks on a
full pipe and a test can read both after the process stopped. Like the in-process ``EmulatorServer`` it
has ``url`` and ``admin`` (the emulator's own ``AdminClient``), and is a context manager.

Where the in-process emulator is enough, tests use the emulator package's public helper instead (see
the decision in :mod:`spec.support`).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from metering_emulator.testing import AdminClient

_URL = re.compile(r"http://127\.0\.0\.1:\d+")


class EmulatorExited(RuntimeError):
    """The emulator ended before it printed its URL (e.g. exit 2 on a bad argument)."""

    def __init__(self, returncode: int, stdout: str, stderr: str) -> None:
        super().__init__(f"emulator exited with {returncode}: {stderr[-2000:]}")
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def console_script(name: str) -> Path:
    """The console script installed next to this interpreter (``.venv/bin``), not looked up on ``PATH``:
    ``scripts/test.sh`` runs ``.venv/bin/python`` without the venv on ``PATH``."""
    script = Path(sys.executable).parent / name
    if not script.is_file():
        raise FileNotFoundError(f"{name} is not installed next to {sys.executable} (pip install -e ./emulator)")
    return script


class EmulatorProcess:
    """One emulator process. ``fixtures`` (a dict) is written to ``workdir/fixtures.json`` (mode 0600) at
    start and passed as ``--fixtures``; ``quotas=False`` adds ``--no-quotas``; ``extra_args`` go last."""

    def __init__(self, workdir: Path, fixtures: dict[str, Any] | None = None, quotas: bool = True,
                 extra_args: Iterable[str] = (), *, console_script: bool = False) -> None:
        self.workdir = Path(workdir)
        self.fixtures = fixtures
        self.quotas = quotas
        self.extra_args = list(extra_args)
        self.console_script = console_script
        self.out_path = self.workdir / "emulator.out"
        self.log_path = self.workdir / "emulator.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.first_line = ""
        self.admin = AdminClient("http://127.0.0.1:0")

    def command(self) -> list[str]:
        """The command line ``start`` runs."""
        program = [str(console_script("metering-emulator"))] if self.console_script else [
            sys.executable, "-m", "metering_emulator"]
        cmd = [*program, "--host", "127.0.0.1", "--port", "0"]
        if self.fixtures is not None:
            cmd += ["--fixtures", str(self.workdir / "fixtures.json")]
        if not self.quotas:
            cmd.append("--no-quotas")
        return cmd + self.extra_args

    def start(self, timeout: float = 30.0) -> Self:
        """Start and wait (bounded) until the first stdout line names the URL and ``health`` answers."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.fixtures is not None:
            fixtures_path = self.workdir / "fixtures.json"
            fixtures_path.write_text(json.dumps(self.fixtures))
            fixtures_path.chmod(0o600)
        with open(self.out_path, "wb") as out, open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.command(), stdout=out, stderr=log, stdin=subprocess.DEVNULL,
                                         start_new_session=True, cwd=self.workdir)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            first, newline, _ = self.output().partition("\n")
            if newline:
                match = _URL.search(first)
                if not match:
                    self.stop()
                    raise RuntimeError(f"the emulator's first line has no URL: {first!r} / {self.log()[-2000:]}")
                self.first_line, self.url = first, match.group(0)
                self.admin = AdminClient(self.url, timeout=30)
                self.admin.health()
                return self
            if self.proc.poll() is not None:
                raise EmulatorExited(self.proc.returncode, self.output(), self.log())
            time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"emulator did not print its URL within {timeout}s")

    def output(self) -> str:
        """Everything written to stdout so far."""
        return self.out_path.read_text(errors="replace") if self.out_path.exists() else ""

    def log(self) -> str:
        """Everything written to stderr (the request log) so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def terminate(self, timeout: float = 15.0) -> int:
        """SIGTERM (the graceful stop) and the exit status; SIGKILL if it does not end within ``timeout``."""
        proc, self.proc = self.proc, None
        if proc is None:
            raise RuntimeError("the emulator is not running")
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        return proc.returncode

    def stop(self) -> None:
        """Stop it if it runs (idempotent)."""
        if self.proc is not None:
            self.terminate()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # conveniences of the flow harness (the admin API through ``admin``)

    def records(self) -> list[dict[str, Any]]:
        """The stored records (``GET records`` without its summary)."""
        return list(self.admin.records()["records"])

    def stats(self) -> dict[str, Any]:
        return self.admin.stats()

    def calls(self, operation: str) -> int:
        """Requests that reached ``operation`` (all outcomes)."""
        return int(op_stats(self.stats(), operation).get("calls", 0))

    def add_fault(self, **spec: Any) -> dict[str, Any]:
        return self.admin.add_fault(**spec)

    def clear_faults(self) -> None:
        self.admin.clear_faults()

    def set_config(self, **cfg: Any) -> dict[str, Any]:
        return self.admin.set_config(**cfg)

    def mint_token(self, product_code: str, customer: dict[str, Any]) -> str:
        return self.admin.mint_token(product_code, customer)


def op_stats(stats: dict[str, Any], operation: str) -> dict[str, Any]:
    """One operation's entry of ``GET /_emulator/stats`` (calls, succeeded, throttled, errors)."""
    ops = stats.get("operations", stats)
    return dict(ops.get(operation) or {})
