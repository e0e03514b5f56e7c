"""All mutable emulator state in one place, guarded by one lock: config, fixtures, records, tokens,
idempotency, registrations, quotas, statistics and faults."""

from __future__ import annotations

import copy
import math
import secrets
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from decimal import Decimal
from typing import Any, ClassVar

from .catalogue import NAMES, OPERATIONS, WINDOWS
from .clock import UsageClock
from .faults import Fault, FaultSet
from .fixtures import Customer, Fixtures, load_fixtures
from .signing import JwtSigner


class ConfigError(ValueError):
    """A config update with an unknown key or a value of the wrong type or range."""


@dataclass
class Config:
    """Run-time settings; the admin API uses the camelCase names listed in ``NAMES``."""

    quotas: bool = True
    batch_meter_usage_window_hours: float = 24.0
    meter_usage_window_hours: float = 6.0
    month_end_grace_hours: float = 6.0
    echo: str = "verbatim"
    token_lifetime_seconds: float = 4 * 3600.0
    region: str = "us-east-1"
    clock_offset_seconds: float = 0.0
    future_tolerance_seconds: float = 300.0
    strict_customers: bool = False
    modeled_constraint_errors: bool = False
    public_key_version: int = 1
    disabled_operations: list[str] = field(default_factory=list)
    # STS and workload credentials (sts.py, workload.py)
    sts_default_duration_seconds: float = 3600.0
    sts_min_duration_seconds: float = 900.0
    refuse_long_term_keys: bool = False
    # A registration token resolved once answers ExpiredTokenException afterwards (the model's
    # ExpiredTokenException: "... the buyer has resubmitted the registration token ..."); off: idempotent
    single_use_registration_tokens: bool = False

    NAMES: ClassVar[dict[str, str]] = {
        "quotas": "quotas",
        "batchMeterUsageWindowHours": "batch_meter_usage_window_hours",
        "meterUsageWindowHours": "meter_usage_window_hours",
        "monthEndGraceHours": "month_end_grace_hours",
        "echo": "echo",
        "tokenLifetimeSeconds": "token_lifetime_seconds",
        "region": "region",
        "clockOffsetSeconds": "clock_offset_seconds",
        "futureToleranceSeconds": "future_tolerance_seconds",
        "strictCustomers": "strict_customers",
        "modeledConstraintErrors": "modeled_constraint_errors",
        "publicKeyVersion": "public_key_version",
        "disabledOperations": "disabled_operations",
        "stsDefaultDurationSeconds": "sts_default_duration_seconds",
        "stsMinDurationSeconds": "sts_min_duration_seconds",
        "refuseLongTermKeys": "refuse_long_term_keys",
        "singleUseRegistrationTokens": "single_use_registration_tokens",
    }

    # The single window of older versions: setting it sets every per-operation window (the catalogue's
    # ``window`` attributes; kept as an alias).
    ALIASES: ClassVar[dict[str, tuple[str, ...]]] = {
        "timestampWindowHours": WINDOWS,
        "timestamp_window_hours": WINDOWS,
    }
    ECHO_MODES: ClassVar[tuple[str, ...]] = ("verbatim", "normalised")

    def as_json(self) -> dict[str, Any]:
        """The admin API form (camelCase)."""
        return {camel: copy.copy(getattr(self, attr)) for camel, attr in self.NAMES.items()}

    def _checked(self, key: str, attr: str, kind: Any, value: Any) -> Any:
        """``value`` for field ``attr`` (of type ``kind``) if it is valid, as stored; else a ConfigError."""
        if kind == "bool":
            if not isinstance(value, bool):
                raise ConfigError(f"{key} must be a boolean")
        elif kind == "str":
            if not isinstance(value, str) or not value:
                raise ConfigError(f"{key} must be a non-empty string")
            if attr == "echo" and value not in self.ECHO_MODES:
                raise ConfigError(f"{key} must be one of {list(self.ECHO_MODES)}")
        elif kind == "list[str]":
            if not isinstance(value, list) or any(v not in NAMES for v in value):
                raise ConfigError(f"{key} must be a list of operation names")
            if attr == "disabled_operations":
                # DisabledApiException is in the model's errors of some operations only (not MeterUsage's):
                # the emulator never answers an error the model does not list for the operation
                unmodeled = [v for v in value if "DisabledApiException" not in OPERATIONS[v].errors]
                if unmodeled:
                    raise ConfigError(f"{key}: DisabledApiException is not a modeled error of {', '.join(unmodeled)}")
            value = list(value)
        elif kind == "int":
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{key} must be a positive integer")
        else:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
                raise ConfigError(f"{key} must be a number")
            if attr != "clock_offset_seconds" and value < 0:
                raise ConfigError(f"{key} must not be negative")
            if abs(value) > 1e11:
                raise ConfigError(f"{key} is out of range")
            value = float(value)
        return value

    def update(self, changes: Any) -> None:
        """Apply camelCase or snake_case changes after checking all of them (nothing applied on error)."""
        if not isinstance(changes, dict):
            raise ConfigError("config must be a JSON object")
        staged: dict[str, Any] = {}
        types = {f.name: f.type for f in fields(self)}
        for key, value in changes.items():
            targets = self.ALIASES.get(key)
            attr = targets[0] if targets else self.NAMES.get(key, key if key in self.NAMES.values() else None)
            if attr is None:
                raise ConfigError(f"unknown config key {key!r}; known: {sorted(self.NAMES)}")
            checked = self._checked(key, attr, types[attr], value)
            for target in targets or (attr,):
                staged[target] = checked
        for attr, value in staged.items():
            setattr(self, attr, value)


@dataclass
class IssuedToken:
    """A registration token known to the emulator."""

    product_code: str
    customer: Customer
    issued_at: float
    resolved: bool = False  # resolved at least once (singleUseRegistrationTokens)


@dataclass
class OperationStats:
    """Per-operation call statistics."""

    calls: int = 0
    succeeded: int = 0
    throttled: int = 0
    errors: Counter[str] = field(default_factory=Counter)

    def as_json(self) -> dict[str, Any]:
        """The admin API form."""
        return {"calls": self.calls, "succeeded": self.succeeded, "throttled": self.throttled,
                "errors": dict(self.errors)}


class State:
    """The emulator's state. Call sites hold ``lock`` while they read or change anything here."""

    def __init__(self, fixtures: Fixtures | None = None, config: Config | None = None,
                 faults: list[Fault] | None = None, seed: int | None = None,
                 clock: UsageClock | None = None) -> None:
        self.lock = threading.RLock()
        self.initial_clock = clock if clock is not None else UsageClock()
        self.clock = copy.copy(self.initial_clock)
        self.monotonic: Callable[[], float] = time.monotonic  # quota clock; tests may replace it
        self.signer = JwtSigner()
        self.initial_fixtures = fixtures if fixtures is not None else load_fixtures(None)
        self.initial_config = copy.deepcopy(config) if config is not None else Config()
        self.initial_faults = list(faults or [])
        self.faults = FaultSet(seed)
        self.started_at = time.time()
        self.fixtures = self.initial_fixtures
        self.config = copy.deepcopy(self.initial_config)
        self._clear_dynamic()
        for fault in self.initial_faults:
            self.faults.add_fault(copy.deepcopy(fault))

    def _clear_dynamic(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.record_index: dict[tuple[str, ...], dict[str, Any]] = {}
        self.client_tokens: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {}
        self.registered: set[tuple[str, str]] = set()
        self.stats: dict[str, OperationStats] = {}
        self.quota_windows: dict[tuple[str, str, str], deque[float]] = {}
        self.sts_sessions: Any = None  # sts.Sessions, created on first use
        now = self.now()
        self.tokens: dict[str, IssuedToken] = {
            t.token: IssuedToken(t.product_code, t.customer, now) for t in self.fixtures.tokens
        }
        self.audit: Counter[str] = Counter()  # e.g. records sent with ProductCode and LicenseArn
        # BatchMeterUsage's billing bases per (operation, product, customer account, dimension, hour):
        # {"product" | "license": the first MeteringRecordId billed on that basis} (operations._batch_record).
        self.billing_bases: dict[tuple[str, ...], dict[str, str]] = {}

    def emulator_now(self) -> float:
        """The emulator clock: wall time plus ``clockOffsetSeconds`` (drives the SigV4 skew check)."""
        return time.time() + self.config.clock_offset_seconds

    def now(self) -> float:
        """The usage clock (see clock.py): the emulator clock unless set over ``POST /_emulator/clock``."""
        return self.clock.now(self.emulator_now())

    def reset(self) -> None:
        """Back to the start-up fixtures, config and faults with no records, tokens or statistics."""
        with self.lock:
            self.fixtures = self.initial_fixtures
            self.config = copy.deepcopy(self.initial_config)
            self.clock = copy.copy(self.initial_clock)
            self.faults.clear()
            for fault in self.initial_faults:
                self.faults.add_fault(copy.deepcopy(fault))
            self._clear_dynamic()

    def load(self, fixtures: Fixtures) -> None:
        """Replace the fixtures; records, tokens, registrations and statistics are cleared."""
        with self.lock:
            self.fixtures = fixtures
            self._clear_dynamic()

    def mint_token(self, product_code: str, customer: Customer, token: str | None = None) -> str:
        """Issue a registration token (random, with ``+``, ``/`` and ``=`` like real ones) now."""
        with self.lock:
            if token is None:
                token = "+" + secrets.token_urlsafe(24).replace("-", "/") + "=="
            self.tokens[token] = IssuedToken(product_code, customer, self.now())
            return token

    def stats_for(self, operation: str) -> OperationStats:
        """The statistics bucket of one operation (created on first use)."""
        with self.lock:
            bucket = self.stats.get(operation)
            if bucket is None:
                bucket = self.stats[operation] = OperationStats()
            return bucket

    def take_quota(self, account: str, operation: str) -> bool:
        """Count a call against the per-second quota of ``account`` in this region; False when over it.

        AWS counts a quota per account and region, shared by every access key (and every temporary
        credential) of the account (https://docs.aws.amazon.com/marketplace/latest/APIReference/
        metering-service-quotas.html); the caller passes the calling credential's ``accountId`` (its
        access key id when a fixture gives none).
        """
        limit = OPERATIONS[operation].quota_per_second
        if limit is None:
            return True
        with self.lock:
            if not self.config.quotas:
                return True
            now = self.monotonic()
            window = self.quota_windows.setdefault((account, self.config.region, operation), deque())
            while window and window[0] <= now - 1.0:
                window.popleft()
            if len(window) >= limit:
                return False
            window.append(now)
            return True

    def summary(self) -> list[dict[str, Any]]:
        """Counts and exact (Decimal) quantity sums per product, customer, LicenseArn, dimension and hour."""
        with self.lock:
            groups: dict[tuple[str, str, str, str, str], dict[str, Any]] = {}
            for r in self.records:
                customer = r.get("customerIdentifier") or r.get("customerAWSAccountId") or ""
                key = (r["productCode"], customer, r.get("licenseArn") or "", r["dimension"], r["hour"])
                g = groups.get(key)
                if g is None:
                    g = groups[key] = {"productCode": key[0], "customer": key[1], "dimension": key[3],
                                       "hour": key[4], "count": 0, "quantity": Decimal(0)}
                    if key[2]:
                        g["licenseArn"] = key[2]
                g["count"] += 1
                g["quantity"] += r["quantity"]
            return list(groups.values())
