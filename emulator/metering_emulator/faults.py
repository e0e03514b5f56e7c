"""Fault switches: throttling, 500s, request timeouts (``RequestTimeoutException``, which botocore's
standard and adaptive retry modes treat as transient: ``botocore/retries/standard.py``,
``TransientRetryableChecker``), added latency, dropped connections (before the call is processed; or
after it, ``lostReply``: a reply lost on its way back, so the retry finds the call already done),
unprocessed batch records, and
non-JSON gateway errors (an HTML 503, an empty 502) that exercise clients' generic error parsing. The
workload-identity endpoints can be made busy too: a fault naming ``InstanceMetadata`` or
``ContainerCredentials`` in its operations (catalogue.py ``WORKLOAD_ENDPOINTS``) applies to them.

A fault fires with probability ``rate`` (default 1) and, when ``count`` is set, only that many times.
"""

from __future__ import annotations

import json
import random
import threading
from dataclasses import dataclass, field
from typing import Any

from .catalogue import NAMES, UNPROCESSED, WORKLOAD_ENDPOINTS, WORKLOAD_FAULTS

FAULT_TYPES = ("throttle", "error500", "requestTimeout", "latency", "drop", "lostReply", "unprocessed", "html503",
               "empty502")


class FaultSpecError(ValueError):
    """A fault specification that cannot be used (the message says why)."""


@dataclass
class Fault:
    """One armed fault. ``remaining`` is None for unlimited."""

    id: int
    type: str
    rate: float = 1.0
    remaining: int | None = None
    latency_ms: int = 0
    operations: tuple[str, ...] = NAMES
    fired: int = 0

    def as_json(self) -> dict[str, Any]:
        """The admin API form."""
        out: dict[str, Any] = {"id": self.id, "type": self.type, "rate": self.rate,
                               "operations": list(self.operations), "fired": self.fired}
        if self.remaining is not None:
            out["remaining"] = self.remaining
        if self.type == "latency":
            out["latencyMs"] = self.latency_ms
        return out


def parse_spec(spec: Any, fault_id: int) -> Fault:
    """Build a Fault from its JSON form ``{"type", "rate"?, "count"?, "latencyMs"?, "operations"?}``."""
    if not isinstance(spec, dict):
        raise FaultSpecError("a fault must be a JSON object")
    unknown = set(spec) - {"type", "rate", "count", "latencyMs", "operations"}
    if unknown:
        raise FaultSpecError(f"unknown fault keys: {sorted(unknown)}")
    kind = spec.get("type")
    if kind not in FAULT_TYPES:
        raise FaultSpecError(f"fault type must be one of {list(FAULT_TYPES)}")
    rate = spec.get("rate", 1.0)
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate <= 1:
        raise FaultSpecError("rate must be a number from 0 to 1")
    count = spec.get("count")
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
        raise FaultSpecError("count must be a positive integer")
    latency = spec.get("latencyMs", 0)
    if isinstance(latency, bool) or not isinstance(latency, (int, float)) or not 0 <= latency <= 600_000:
        raise FaultSpecError("latencyMs must be a number from 0 to 600000")
    if kind == "latency" and latency <= 0:
        raise FaultSpecError("a latency fault needs latencyMs > 0")
    ops = spec.get("operations", list(NAMES))
    if not isinstance(ops, list) or not ops or any(o not in NAMES + WORKLOAD_ENDPOINTS for o in ops):
        raise FaultSpecError(f"operations must be a non-empty list drawn from {list(NAMES + WORKLOAD_ENDPOINTS)}")
    if kind not in WORKLOAD_FAULTS and any(o in WORKLOAD_ENDPOINTS for o in ops):
        raise FaultSpecError(f"a {kind} fault does not apply to {' or '.join(WORKLOAD_ENDPOINTS)}; their fault "
                             f"types are {list(WORKLOAD_FAULTS)}")
    if kind == "unprocessed" and ops != list(UNPROCESSED) and set(ops) != set(NAMES):
        raise FaultSpecError(f"an unprocessed fault applies to {' and '.join(UNPROCESSED)} only")
    if kind == "unprocessed":
        ops = list(UNPROCESSED)
    return Fault(fault_id, kind, float(rate), count, int(latency), tuple(ops))


def parse_cli_spec(text: str, fault_id: int) -> Fault:
    """Parse ``--fault``: JSON, or ``type[:key=value,...]`` (operations joined with ``+``)."""
    text = text.strip()
    if text.startswith("{"):
        try:
            return parse_spec(json.loads(text), fault_id)
        except ValueError as exc:
            raise FaultSpecError(str(exc)) from exc
    kind, _, rest = text.partition(":")
    spec: dict[str, Any] = {"type": kind}
    for item in filter(None, rest.split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise FaultSpecError(f"expected key=value, got {item!r}")
        if key == "operations":
            spec[key] = value.split("+")
        elif key in ("count", "latencyMs"):
            try:
                spec[key] = int(value)
            except ValueError as exc:
                raise FaultSpecError(f"{key} must be an integer") from exc
        elif key == "rate":
            try:
                spec[key] = float(value)
            except ValueError as exc:
                raise FaultSpecError("rate must be a number") from exc
        else:
            raise FaultSpecError(f"unknown fault key {key!r}")
    return parse_spec(spec, fault_id)


@dataclass
class FaultSet:
    """The armed faults, consulted once per call (or once per record for ``unprocessed``)."""

    seed: int | None = None
    _faults: list[Fault] = field(default_factory=list)
    _next_id: int = 1
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)

    def add(self, spec: Any) -> Fault:
        """Arm a fault from its JSON form."""
        with self._lock:
            fault = parse_spec(spec, self._next_id)
            self._next_id += 1
            self._faults.append(fault)
            return fault

    def add_fault(self, fault: Fault) -> Fault:
        """Arm an already parsed fault (its id is reassigned)."""
        with self._lock:
            fault.id = self._next_id
            self._next_id += 1
            self._faults.append(fault)
            return fault

    def clear(self) -> None:
        """Disarm every fault."""
        with self._lock:
            self._faults.clear()

    def remove(self, fault_id: int) -> bool:
        """Disarm one fault; False when no such id is armed."""
        with self._lock:
            before = len(self._faults)
            self._faults = [f for f in self._faults if f.id != fault_id]
            return len(self._faults) != before

    def list(self) -> list[dict[str, Any]]:
        """The armed faults in admin API form."""
        with self._lock:
            return [f.as_json() for f in self._faults]

    def fire(self, kind: str, operation: str) -> Fault | None:
        """Return the first armed fault of ``kind`` for ``operation`` that fires now, consuming its count."""
        with self._lock:
            for fault in self._faults:
                if fault.type != kind or operation not in fault.operations:
                    continue
                if fault.rate < 1.0 and self._random.random() >= fault.rate:
                    continue
                fault.fired += 1
                if fault.remaining is not None:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                return fault
            return None
