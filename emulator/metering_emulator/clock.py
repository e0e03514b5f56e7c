"""The usage clock: the "now" the Metering rules see (timestamp windows, the month-end cut-off, token
lifetimes, subscription periods, ``receivedAt``).

By default it is the emulator clock (wall time plus ``clockOffsetSeconds``), which also drives the SigV4
skew check. Set over ``POST /_emulator/clock`` (or ``--clock``), it moves on its own: a test can stand at
05:59 UTC on the 1st of a month while botocore still signs with the real time, so the requests pass the
five-minute signature check.
"""

from __future__ import annotations

import calendar
import math
import time
from dataclasses import dataclass
from typing import Any

MODES = ("real", "offset", "set")


class ClockError(ValueError):
    """A clock setting that cannot be used (the message says why)."""


def parse_instant(value: Any, what: str = "now") -> float:
    """Epoch seconds from a number or an ISO 8601 UTC text ``YYYY-MM-DDTHH:MM:SS[.fff]Z``."""
    if isinstance(value, bool):
        raise ClockError(f"{what} must be epoch seconds or an ISO 8601 UTC time like 2026-12-01T05:59:00Z")
    if isinstance(value, (int, float)):
        if not math.isfinite(value) or not 0 <= value < 253402300800:
            raise ClockError(f"{what} is out of range")
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        fraction = 0.0
        if text.endswith("Z"):
            text = text[:-1]
        elif text.endswith("+00:00"):
            text = text[:-6]
        else:
            raise ClockError(f"{what} must be an ISO 8601 UTC time ending in Z, e.g. 2026-12-01T05:59:00Z")
        if "." in text:
            text, _, frac = text.partition(".")
            if not frac.isdigit():
                raise ClockError(f"{what}: bad fraction of a second")
            fraction = float("0." + frac)
        try:
            parsed = time.strptime(text, "%Y-%m-%dT%H:%M:%S")
        except ValueError as exc:
            raise ClockError(f"{what} must be an ISO 8601 UTC time like 2026-12-01T05:59:00Z") from exc
        return float(calendar.timegm(parsed)) + fraction
    raise ClockError(f"{what} must be epoch seconds or an ISO 8601 UTC time like 2026-12-01T05:59:00Z")


def iso_utc(epoch: float) -> str:
    """``YYYY-MM-DDTHH:MM:SSZ``."""
    epoch = min(max(epoch, 0.0), 253402300799.0)
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


@dataclass
class UsageClock:
    """``real``: the emulator clock; ``offset``: the emulator clock plus ``offset_seconds``; ``set``: the
    instant ``set_to`` (running on from it with wall time, or standing still when ``frozen``)."""

    mode: str = "real"
    offset_seconds: float = 0.0
    set_to: float = 0.0
    set_at_wall: float = 0.0
    frozen: bool = False

    def now(self, emulator_now: float) -> float:
        """The usage-clock reading given the emulator clock's."""
        if self.mode == "offset":
            return emulator_now + self.offset_seconds
        if self.mode == "set":
            return self.set_to if self.frozen else self.set_to + (time.time() - self.set_at_wall)
        return emulator_now

    def as_json(self, emulator_now: float) -> dict[str, Any]:
        """The admin API form."""
        now = self.now(emulator_now)
        out: dict[str, Any] = {"mode": self.mode, "now": now, "iso": iso_utc(now), "emulatorNow": emulator_now,
                               "offsetSeconds": now - emulator_now}
        if self.mode == "set":
            out["frozen"] = self.frozen
        return out


def parse_clock(spec: Any) -> UsageClock:
    """``{"now": ISO|epoch, "frozen"?: bool}`` | ``{"offsetSeconds": s}`` | ``{"real": true}``."""
    if not isinstance(spec, dict):
        raise ClockError('the clock must be a JSON object: {"now": "2026-12-01T05:59:00Z"}, '
                         '{"offsetSeconds": -3600} or {"real": true}')
    unknown = set(spec) - {"now", "frozen", "offsetSeconds", "real"}
    if unknown:
        raise ClockError(f"unknown clock keys: {sorted(unknown)}")
    chosen = [k for k in ("now", "offsetSeconds", "real") if k in spec]
    if len(chosen) != 1:
        raise ClockError("give exactly one of now, offsetSeconds, real")
    frozen = spec.get("frozen", False)
    if not isinstance(frozen, bool):
        raise ClockError("frozen must be a boolean")
    if "frozen" in spec and chosen[0] != "now":
        raise ClockError("frozen applies to now only")
    if chosen[0] == "now":
        return UsageClock("set", set_to=parse_instant(spec["now"]), set_at_wall=time.time(), frozen=frozen)
    if chosen[0] == "offsetSeconds":
        offset = spec["offsetSeconds"]
        if isinstance(offset, bool) or not isinstance(offset, (int, float)) or not math.isfinite(offset) \
                or abs(offset) > 1e11:
            raise ClockError("offsetSeconds must be a number of seconds")
        return UsageClock("offset", offset_seconds=float(offset))
    if spec["real"] is not True:
        raise ClockError("real must be true")
    return UsageClock()
