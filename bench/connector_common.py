"""Shared by the connector benchmarks: an emulator in its own process (so its CPU is not counted)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from types import TracebackType
from typing import Self

ROOT = Path(__file__).resolve().parent.parent
ACCESS_KEY = "AKIAEMULATOR0000TEST"
SECRET_KEY = "emulator/Secret+Key/DoNotUseInProduction00"
PRODUCT = "emu-demo-product-0001"
TOKEN = "emu-demo-registration-token-0001"


class EmulatorProcess:
    """``python -m metering_emulator`` on a free loopback port."""

    def __init__(self, *args: str) -> None:
        self.args = list(args)
        self.url = ""
        self.proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> Self:
        self.proc = subprocess.Popen([sys.executable, "-m", "metering_emulator", "--host", "127.0.0.1",
                                      "--port", "0", *self.args],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:\d+", line)
        if not match:
            self.proc.terminate()
            raise SystemExit(f"emulator did not start: {line!r}")
        self.url = match.group(0)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
