"""Shared by the connector benchmarks: an emulator in its own process (so its CPU is not counted)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from types import TracebackType
from typing import Self

from spec.support.emulator import EmulatorProcess as _Process

ROOT = Path(__file__).resolve().parent.parent
ACCESS_KEY = "AKIAEMULATOR0000TEST"
SECRET_KEY = "emulator/Secret+Key/DoNotUseInProduction00"
PRODUCT = "emu-demo-product-0001"
TOKEN = "emu-demo-registration-token-0001"


class EmulatorProcess:
    """The emulator in its own process, through the suite's one launcher (spec/support/emulator.py), in a
    temporary directory; ``args`` are extra command-line arguments (``--no-quotas``, ``--fixtures F``)."""

    def __init__(self, *args: str) -> None:
        self.args = list(args)
        self.url = ""
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._proc: _Process | None = None

    def __enter__(self) -> Self:
        self._tmp = tempfile.TemporaryDirectory(prefix="bench-emulator-")
        self._proc = _Process(Path(self._tmp.name), extra_args=self.args).start()
        self.url = self._proc.url
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._proc is not None:
            self._proc.stop()
        if self._tmp is not None:
            self._tmp.cleanup()
