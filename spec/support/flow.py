"""The end-to-end flow harness: three steps on a private broker against the metering emulator.

```
platform ──export request──▶ step_1  Node sailor, billing-export (nodepeers/components)
                               │ N data messages, each a Batch Meter Usage input (passthrough on)
                               ▼
                             step_2  the connector in the Python sailor (or the aws-sdk Node peer),
                               │     1..n replicas on one queue, calling the emulator over HTTP
                               ├──── error key ──▶ error collector queue (read by the platform side)
                               ▼ data key
                             step_3  Node sailor, sink: one JSON line per message in a file
```

Everything the platform does (topology, step documents, encrypted inputs, decrypted outputs, sailor
processes) comes from :mod:`spec.support.platform`; this module adds what is specific to the flow:
usage plans with the expected records computed independently of step 1, an emulator subprocess with
generated fixtures and random secrets, the rebound delay queue, a process supervisor (what Kubernetes
does for a crashed container), progress, and the final audit.
"""

from __future__ import annotations

import base64
import contextlib
import json
import secrets
import string
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Self

from spec.support.emulator import EmulatorProcess
from spec.support.platform import (
    NODE_COMPONENTS,
    FakePlatformApi,
    Output,
    Platform,
    SailorProcess,
    Step,
    new_flow,
    sailor_env,
)
from spec.support.rabbit import RabbitBroker

ROOT = Path(__file__).resolve().parents[2]

DIMENSIONS = ("users", "api_calls", "storage_gb")

# The invalid cases step 1 produces (same order as nodepeers/components/billing-export/lib/usage.js)
# and, for each, words of which the error message must contain at least one: the field at fault.
INVALID_KINDS: dict[str, tuple[str, ...]] = {
    "quantity-wrong-type": ("Quantity",),
    "missing-dimension": ("Dimension",),
    "garbage-body": ("UsageRecords", "garbage"),
    "negative-quantity": ("Quantity",),
    "both-customer-ids": ("CustomerIdentifier", "CustomerAWSAccountId"),
    "records-not-a-list": ("UsageRecords",),
    "timestamp-garbage": ("Timestamp",),
    "too-long-dimension": ("Dimension",),
    "string-body": ("body", "object"),
    "misspelled-field": ("Quantiy",),
}
INVALID_ORDER = tuple(INVALID_KINDS)


def _random_token(n: int, alphabet: str = string.ascii_letters + string.digits) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(n))


# ---------------------------------------------------------------------------------------------
# usage plans: what step 1 emits, and what must be billed


@dataclass
class UsagePlan:
    """Deterministic usage: message ``i`` carries record slots ``i*k .. i*k+k-1``.

    Slot ``j`` is the unique (hour, dimension, customer) ``hours[j % H]``,
    ``dimensions[j // H % D]``, ``customers[j // (H*D)]`` with quantity ``(j*7919) % 1000 + 1``.
    Every ``invalid_every``-th message (index % n == n-1) is invalid; its slots are not billed.
    """

    run_id: str
    product_code: str
    customers: list[str]
    hours: list[int]
    messages: int
    records_per_message: int = 1
    dimensions: list[str] = field(default_factory=lambda: list(DIMENSIONS))
    invalid_every: int = 0
    fmt: str = "batch"
    tokens: list[str] = field(default_factory=list)
    caller_account: str = ""  # the metering credential's account (MeterUsage bills the caller)

    OPERATIONS: ClassVar[dict[str, str]] = {
        "batch": "BatchMeterUsage",
        "meter": "MeterUsage",
        "resolve": "ResolveCustomer",
    }
    FUNCTIONS: ClassVar[dict[str, str]] = {
        "batch": "batchMeterUsage",
        "meter": "meterUsage",
        "resolve": "resolveCustomer",
    }

    @property
    def operation(self) -> str:
        return self.OPERATIONS[self.fmt]

    @classmethod
    def make(
        cls,
        messages: int,
        records_per_message: int = 1,
        invalid_every: int = 0,
        hours: int = 5,
        fmt: str = "batch",
        now: float | None = None,
    ) -> Self:
        """A plan with just enough customers for every slot (the newest hour first, all in the window)."""
        run_id = "e2e" + uuid.uuid4().hex[:10]
        top = int(now if now is not None else time.time()) // 3600 * 3600
        hour_list = [top - 3600 * h for h in range(hours)]
        slots = messages * records_per_message
        if fmt == "meter" and messages > hours * len(DIMENSIONS):
            raise ValueError("MeterUsage bills the caller once per dimension and hour: too many messages")
        n_customers = max(1, -(-slots // (hours * len(DIMENSIONS))))
        if fmt == "resolve":
            n_customers = messages  # one registration token per customer
        customers = [f"cust-{run_id}-{c:05d}" for c in range(n_customers)]
        return cls(
            run_id=run_id,
            product_code=f"prod-{run_id}",
            customers=customers,
            hours=hour_list,
            messages=messages,
            records_per_message=records_per_message,
            invalid_every=invalid_every,
            fmt=fmt,
        )

    def slot(self, j: int) -> dict[str, Any]:
        h, d = len(self.hours), len(self.dimensions)
        return {
            "CustomerIdentifier": self.customers[j // (h * d)],
            "Dimension": self.dimensions[j // h % d],
            "Quantity": (j * 7919) % 1000 + 1,
            "Timestamp": self.hours[j % h],
        }

    def message_id(self, index: int) -> str:
        return f"{self.run_id}-{index}"

    def index_of(self, message_id: str) -> int | None:
        prefix = self.run_id + "-"
        if (
            isinstance(message_id, str)
            and message_id.startswith(prefix)
            and message_id[len(prefix) :].isdigit()
        ):
            return int(message_id[len(prefix) :])
        return None

    def is_invalid(self, index: int) -> bool:
        n = self.invalid_every
        return n > 0 and index % n == n - 1

    def invalid_kind(self, index: int) -> str | None:
        if not self.is_invalid(index):
            return None
        return INVALID_ORDER[(index // self.invalid_every) % len(INVALID_ORDER)]

    def records_of(self, index: int) -> list[dict[str, Any]]:
        k = self.records_per_message
        return [self.slot(index * k + r) for r in range(k)]

    def valid_indexes(self) -> list[int]:
        return [i for i in range(self.messages) if not self.is_invalid(i)]

    def expected_records(self) -> Counter[tuple[str, str, str, int, int]]:
        """(product, customer, dimension, hour, quantity) of every record that must be billed, once.

        Batch plans bill their records' customers; meter plans bill the caller's account (one record per
        message); resolve plans bill nothing.
        """
        out: Counter[tuple[str, str, str, int, int]] = Counter()
        if self.fmt == "resolve":
            return out
        if self.fmt == "meter":
            for i in self.valid_indexes():
                rec = self.slot(i)
                out[
                    (
                        self.product_code,
                        self.caller_account,
                        rec["Dimension"],
                        rec["Timestamp"],
                        rec["Quantity"],
                    )
                ] += 1
            return out
        for i in self.valid_indexes():
            for rec in self.records_of(i):
                out[
                    (
                        self.product_code,
                        rec["CustomerIdentifier"],
                        rec["Dimension"],
                        rec["Timestamp"],
                        rec["Quantity"],
                    )
                ] += 1
        return out

    @property
    def valid_record_count(self) -> int:
        if self.fmt == "resolve":
            return 0
        return len(self.valid_indexes()) * (self.records_per_message if self.fmt == "batch" else 1)

    def request(self, start: int, count: int) -> dict[str, Any]:
        """Body of one export request to step 1 (messages ``start .. start+count-1``)."""
        return {
            "runId": self.run_id,
            "format": self.fmt,
            "productCode": self.product_code,
            "from": start,
            "count": count,
            "recordsPerMessage": self.records_per_message,
            "customers": self.customers,
            "dimensions": self.dimensions,
            "hours": self.hours,
            "invalidEvery": self.invalid_every,
            "tokens": self.tokens,
        }

    def requests(self, chunk: int) -> list[dict[str, Any]]:
        return [self.request(s, min(chunk, self.messages - s)) for s in range(0, self.messages, chunk)]


# ---------------------------------------------------------------------------------------------
# the emulator, as a subprocess (its own CPU, its own log file; spec.support.emulator starts it)


@dataclass
class AwsCredentials:
    """One credential pair of the emulator's fixtures, random for every run."""

    access_key_id: str
    secret_access_key: str
    account_id: str
    session_token: str | None = None

    @classmethod
    def random(cls, temporary: bool = False) -> Self:
        return cls(
            access_key_id=("ASIA" if temporary else "AKIA")
            + _random_token(16, string.ascii_uppercase + "234567"),
            secret_access_key=_random_token(40, string.ascii_letters + string.digits + "+/"),
            account_id="".join(secrets.choice(string.digits[1:]) for _ in range(12)),
            session_token=("FwoG" + _random_token(120, string.ascii_letters + string.digits + "+/"))
            if temporary
            else None,
        )

    def fixture(self) -> dict[str, Any]:
        out = {
            "accessKeyId": self.access_key_id,
            "secretAccessKey": self.secret_access_key,
            "accountId": self.account_id,
        }
        if self.session_token:
            out["sessionToken"] = self.session_token
        return out

    def cfg(self, endpoint_url: str) -> dict[str, Any]:
        """The connector's credential fields (docs/architecture.md §3)."""
        out = {
            "accessKeyId": self.access_key_id,
            "secretAccessKey": self.secret_access_key,
            "region": "us-east-1",
            "endpointUrl": endpoint_url,
        }
        if self.session_token:
            out["sessionToken"] = self.session_token
        return out


def plan_fixtures(plan: UsagePlan, creds: AwsCredentials) -> dict[str, Any]:
    """Emulator fixtures: the plan's product, all its customers, and the caller as a customer too."""
    customers: list[dict[str, Any]] = [{"customerIdentifier": c} for c in plan.customers]
    customers.append(
        {
            "customerAWSAccountId": creds.account_id,
            "licenseArn": f"arn:aws:license-manager::{creds.account_id}:license:l-{uuid.uuid4().hex}",
        }
    )
    return {
        "credentials": [creds.fixture()],
        "products": [
            {"productCode": plan.product_code, "dimensions": plan.dimensions, "customers": customers}
        ],
    }


def billed_key(rec: dict[str, Any]) -> tuple[str, str, str, int, int]:
    """(product, customer, dimension, hour, quantity) of one record from ``GET /_emulator/records``."""
    customer = rec.get("customerIdentifier") or rec.get("customerAWSAccountId") or rec.get("customer")
    ts: Any = rec.get("hour", rec.get("timestamp"))
    hour = int(float(ts)) // 3600 * 3600 if not isinstance(ts, str) else _iso_hour(ts)
    return (
        str(rec.get("productCode")),
        str(customer),
        str(rec.get("dimension")),
        hour,
        int(rec.get("quantity", 0)),
    )


def _iso_hour(ts: str) -> int:
    from datetime import datetime

    return int(datetime.fromisoformat(ts).timestamp()) // 3600 * 3600


# ---------------------------------------------------------------------------------------------
# the flow


@dataclass
class Delivery:
    """One message step 3 recorded, or one error message the platform read from step 2's error key."""

    index: int | None
    message: dict[str, Any]
    received_ms: int | None = None
    emitted_ms: int | None = None


@dataclass
class FlowOptions:
    """How the flow is run (defaults: one Python replica of the connector, quotas off)."""

    step2: str = "python"  # "python" (our connector) or "node" (the aws-sdk peer)
    step2_dir: Path | None = None  # another component for step 2 (default: the connector, or the peer)
    function: str = ""  # default: the plan's operation (batchMeterUsage, meterUsage, resolveCustomer)
    replicas: int = 1
    prefetch: int = 10
    quotas: bool = False
    temporary_credentials: bool = False
    log_level: str = "warn"
    supervise: bool = False
    trigger_chunk: int = 20  # messages per export request; step 1 works on up to step1_prefetch at once
    step1_prefetch: int = 50
    # extra environment of step 2's sailors; "{emulator}" in a value becomes the emulator's base URL
    step2_env: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)  # extra environment of every sailor
    step2_fields: dict[str, Any] = field(default_factory=dict)  # step 2's own config fields (cfg)
    # ELASTICIO_AMQP_PERSISTENT_MESSAGES for every step (needed to survive a broker restart)
    persistent: bool = False
    rebound_ttl_queue: bool = True


class MeteringFlow:
    """Broker + emulator + platform + three steps; start with ``with``, everything stopped on exit."""

    def __init__(
        self,
        workdir: Path,
        broker: RabbitBroker,
        plan: UsagePlan,
        options: FlowOptions | None = None,
        emulator_args: Iterable[str] = (),
        shared: tuple[EmulatorProcess, AwsCredentials] | None = None,
    ) -> None:
        """``shared``: a running emulator and a credential of its fixtures, for several flows of one
        account (the caller starts and stops that emulator; its fixtures must hold this plan's product)."""
        self.workdir = Path(workdir)
        self.broker = broker
        self.plan = plan
        self.opts = options or FlowOptions()
        self._own_emulator = shared is None
        if shared is not None:
            self.emulator, self.creds = shared
        else:
            self.creds = AwsCredentials.random(temporary=self.opts.temporary_credentials)
        plan.caller_account = self.creds.account_id
        if shared is None:
            self.emulator = EmulatorProcess(
                self.workdir / "emulator",
                plan_fixtures(plan, self.creds),
                quotas=self.opts.quotas,
                extra_args=emulator_args,
            )
        self.platform = Platform(broker.url)
        self.api = FakePlatformApi()
        self.sink_path = self.workdir / "sink.jsonl"
        self.steps: list[Step] = []
        self.procs: dict[str, list[SailorProcess]] = {}
        self.restarts: Counter[str] = Counter()
        self._stopping = threading.Event()
        self._supervisor: threading.Thread | None = None
        self._sink_offset = 0
        self.sink: dict[int, list[Delivery]] = {}
        self.sink_foreign: list[dict[str, Any]] = []
        self.errors: dict[int, list[Delivery]] = {}
        self.errors_foreign: list[dict[str, Any]] = []
        self.error_outputs: list[Output] = []  # raw error messages as read (kept for the secret scan)
        self.published_at = 0.0

    # --- start / stop

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def step1(self) -> Step:
        return self.steps[0]

    @property
    def step2(self) -> Step:
        return self.steps[1]

    @property
    def step3(self) -> Step:
        return self.steps[2]

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self._own_emulator:
            self.emulator.start()
        if self.plan.fmt == "resolve":
            self.plan.tokens = [
                self.emulator.mint_token(self.plan.product_code, {"customerIdentifier": c})
                for c in self.plan.customers[: self.plan.messages]
            ]
        self.api.start()
        function = self.opts.function or UsagePlan.FUNCTIONS[self.plan.fmt]
        self.steps = new_flow(["exportUsage", function, "record"], prefix="e2e")
        s1, s2, s3 = self.steps
        s1.config = {}
        s1.is_passthrough = True
        s2.config = {**self.creds.cfg(self.emulator.url), **self.opts.step2_fields}
        s2.is_passthrough = True
        s3.config = {}
        for step in self.steps:
            self.api.add_step(step)
        self.platform.declare_flow(self.steps)
        if self.opts.rebound_ttl_queue:
            self._declare_rebound_delay(s2)
        self.sink_path.touch()
        self._start_step(s3, "node", NODE_COMPONENTS / "sink", 1)
        self._start_step(s2, self.opts.step2, self._step2_dir(), self.opts.replicas)
        self._start_step(s1, "node", NODE_COMPONENTS / "billing-export", 1)
        if self.opts.supervise:
            self._supervisor = threading.Thread(target=self._supervise, name="flow-supervisor", daemon=True)
            self._supervisor.start()

    def _step2_dir(self) -> Path:
        if self.opts.step2_dir is not None:
            return self.opts.step2_dir
        return ROOT if self.opts.step2 == "python" else NODE_COMPONENTS / "aws-sdk-metering"

    def _declare_rebound_delay(self, step: Step) -> None:
        """The platform's rebound handling: a delay queue that dead-letters back into the step's queue.

        A rebound carries a per-message ``expiration``, so the platform's plain collector copy expires
        too; a second copy is dead-lettered into :meth:`rebound_log_queue` instead, to be counted.
        """
        name = f"{step.flow_id}:{step.step_id}:rebound-delay"
        audit = f"{step.flow_id}:{step.step_id}:rebound-audit"
        log_queue = self.rebound_log_queue(step)

        def declare(ch: Any) -> None:
            ch.queue_declare(
                name,
                durable=True,
                arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": step.listen_queue},
            )
            ch.queue_bind(name, step.exchange, step.routing_key("rebound"))
            ch.queue_declare(log_queue, durable=True)
            ch.queue_declare(
                audit,
                durable=True,
                arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": log_queue},
            )
            ch.queue_bind(audit, step.exchange, step.routing_key("rebound"))

        self.platform._call(declare)

    @staticmethod
    def rebound_log_queue(step: Step) -> str:
        """Where a copy of every rebound of ``step`` ends up once its delay expired."""
        return f"{step.flow_id}:{step.step_id}:rebound-log"

    def rebounds(self) -> int:
        """Rebounds of step 2 so far: copies still waiting out their delay plus those already expired."""
        step = self.step2
        audit = f"{step.flow_id}:{step.step_id}:rebound-audit"
        return self.platform.ready(audit) + self.platform.ready(self.rebound_log_queue(step))

    def _env(self, step: Step, container_id: str) -> dict[str, str]:
        prefetch = self.opts.step1_prefetch if step.step_id == "step_1" else self.opts.prefetch
        env = sailor_env(
            step,
            self.platform,
            self.api,
            container_id=container_id,
            ELASTICIO_RABBITMQ_PREFETCH_SAILOR=str(prefetch),
            ELASTICIO_DATA_RATE_LIMIT="100000",
            ELASTICIO_ERROR_RATE_LIMIT="100000",
            ELASTICIO_AMQP_PERSISTENT_MESSAGES="true" if self.opts.persistent else "false",
            LOG_LEVEL=self.opts.log_level,
            E2E_SINK_FILE=str(self.sink_path),
            AWS_SDK_JS_SUPPRESS_MAINTENANCE_MODE_MESSAGE="1",
            PYTHONUNBUFFERED="1",
        )
        env.update(self.opts.env)
        if step.step_id == "step_2":
            env.update({k: v.replace("{emulator}", self.emulator.url) for k, v in self.opts.step2_env.items()})
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
            env.pop(name, None)
        return env

    def _start_step(self, step: Step, kind: str, component_dir: Path, replicas: int) -> None:
        procs = []
        for r in range(replicas):
            cid = f"{step.step_id}-{kind}-{r + 1}"
            proc = SailorProcess(
                kind, component_dir, self._env(step, cid), self.workdir / "logs" / f"{cid}.log"
            )
            procs.append(proc.start())
        self.procs[step.step_id] = procs
        for n, proc in enumerate(procs, start=1):
            proc.wait_consuming(self.platform, step.listen_queue, timeout=60, consumers=n)

    def _supervise(self) -> None:
        """Restart any sailor that exited (what the platform's orchestrator does with a container)."""
        while not self._stopping.wait(0.5):
            for step_id, procs in self.procs.items():
                for proc in procs:
                    if not self._stopping.is_set() and proc.proc is not None and proc.proc.poll() is not None:
                        self.restarts[step_id] += 1
                        proc.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._supervisor is not None:
            self._supervisor.join(5)
        for step_id in ("step_1", "step_2", "step_3"):
            for proc in self.procs.get(step_id, []):
                proc.terminate(timeout=15)
        if self._own_emulator:
            self.emulator.stop()
        self.platform.close()
        with contextlib.suppress(Exception):  # never started
            self.api.stop()

    # --- driving

    def publish(self) -> None:
        """Queue the export requests for the whole plan on step 1 (persistent, confirmed)."""
        self.published_at = time.time()
        for body in self.plan.requests(self.opts.trigger_chunk):
            self.platform.publish_input(
                self.step1, {"id": str(uuid.uuid4()), "body": body, "headers": {}, "attachments": {}}
            )

    def publish_paced(self, rate: float) -> None:
        """One export request per message, ``rate`` requests per second (for latency without queueing)."""
        self.published_at = time.time()
        start = time.monotonic()
        for i in range(self.plan.messages):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            body = self.plan.request(i, 1)
            self.platform.publish_input(
                self.step1, {"id": str(uuid.uuid4()), "body": body, "headers": {}, "attachments": {}}
            )

    def step2_procs(self) -> list[SailorProcess]:
        return self.procs["step_2"]

    def kill9_step2(self) -> None:
        for proc in self.step2_procs():
            proc.kill9()

    def restart_step2(self) -> None:
        for proc in self.step2_procs():
            if not proc.alive():
                proc.start()
        self.step2_procs()[0].wait_consuming(
            self.platform, self.step2.listen_queue, timeout=60, consumers=len(self.step2_procs())
        )

    def poll(self) -> None:
        """Read new sink lines and new error messages (bounded; errors are consumed and acked)."""
        self._read_sink()
        for out in self.platform.collect(self.step2.out_queue("error"), 0, timeout=10, kind="error"):
            self.error_outputs.append(out)
            msg = out.message
            index = self._index_from_error(msg)
            if index is None:
                self.errors_foreign.append(msg)
            else:
                self.errors.setdefault(index, []).append(Delivery(index, msg))

    def _index_from_error(self, msg: dict[str, Any]) -> int | None:
        inp = msg.get("errorInput") or {}
        idx = self.plan.index_of(str(inp.get("id")))
        if idx is None:
            step1 = (inp.get("passthrough") or {}).get("step_1") or {}
            idx = self.plan.index_of(str(step1.get("id")))
        return idx

    def _read_sink(self) -> None:
        with open(self.sink_path, "rb") as fh:
            fh.seek(self._sink_offset)
            data = fh.read()
        end = data.rfind(b"\n")
        if end < 0:
            return
        self._sink_offset += end + 1
        for line in data[: end + 1].splitlines():
            rec = json.loads(line)
            step1 = (rec.get("passthrough") or {}).get("step_1") or {}
            index = self.plan.index_of(str(step1.get("id")))
            if index is None:
                self.sink_foreign.append(rec)
                continue
            emitted = (step1.get("headers") or {}).get("x-e2e-emitted-at")
            self.sink.setdefault(index, []).append(
                Delivery(index, rec, received_ms=rec.get("receivedAt"), emitted_ms=emitted)
            )

    def accounted(self) -> int:
        return len(set(self.sink) | set(self.errors))

    def progress_line(self) -> str:
        return (
            f"delivered {len(self.sink)}/{self.plan.messages - len(self.plan.tokens) * 0}  errors "
            f"{len(self.errors)}  dupes {self.duplicates()}  restarts {dict(self.restarts) or 0}"
        )

    def duplicates(self) -> int:
        return sum(len(v) - 1 for v in self.sink.values()) + sum(len(v) - 1 for v in self.errors.values())

    def wait_done(self, timeout: float, settle: float = 1.0, on_progress: Any = None) -> None:
        """Poll until every message of the plan reached step 3 or the error queue (then ``settle`` more)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.poll()
            if on_progress is not None:
                on_progress(self)
            if self.accounted() >= self.plan.messages:
                time.sleep(settle)
                self.poll()
                return
            time.sleep(0.3)
        raise TimeoutError(
            f"flow not done after {timeout:.0f}s: {self.progress_line()}; "
            f"step 2 log: {self.step2_procs()[0].log_tail(8)}"
        )

    def wait_until(self, predicate: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.poll()
            if predicate(self):
                return
            time.sleep(0.2)
        raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}: {self.progress_line()}")

    # --- audit

    def audit(self) -> Audit:
        """Compare what the emulator billed and where every message ended with the plan."""
        self.poll()
        return Audit.build(self)

    # --- artefacts for the secret scan

    def secrets(self) -> dict[str, str]:
        out = {
            "secretAccessKey": self.creds.secret_access_key,
            "cryptoPassword": self.platform.password,
            "apiKey": self.api.api_key,
        }
        if self.creds.session_token:
            out["sessionToken"] = self.creds.session_token
        return out

    def log_files(self) -> list[Path]:
        return sorted((self.workdir / "logs").glob("*.log")) + [self.emulator.out_path, self.emulator.log_path]

    def all_queues(self) -> list[str]:
        names = []
        for step in self.steps:
            names.append(step.listen_queue)
            names.extend(step.out_queue(k) for k in ("message", "error", "rebound", "snapshot"))
        for suffix in ("rebound-delay", "rebound-audit", "rebound-log"):
            names.append(f"{self.step2.flow_id}:{self.step2.step_id}:{suffix}")
        return names


def _b64_decrypt_all(flow: MeteringFlow, body: bytes) -> list[bytes]:
    """Every plaintext a queued body may hide: itself, its decryption, an error envelope's fields."""
    texts = [body]
    crypto = flow.platform.crypto
    for pv in (1, 2):
        with contextlib.suppress(Exception):  # not this encoding
            texts.append(crypto.decrypt(body if pv == 2 else base64.b64decode(body, validate=True)))
    with contextlib.suppress(Exception):  # not an error envelope
        env = json.loads(body)
        for key in ("error", "errorInput"):
            if isinstance(env.get(key), str):
                texts.append(crypto.decrypt(base64.b64decode(env[key])))
    return texts


def scan_queues(flow: MeteringFlow, needles: dict[str, str], timeout: float = 120.0) -> tuple[int, list[str]]:
    """Drain every queue of the flow and look for each secret in every body, header and plaintext."""
    found: list[str] = []
    scanned = 0
    outputs = list(flow.error_outputs)  # error messages the platform side already consumed
    for queue in flow.all_queues():
        outputs.extend(flow.platform.drain(queue, kind="raw", timeout=timeout, settle=0.3))
    for out in outputs:
        scanned += 1
        blobs = _b64_decrypt_all(flow, out.body) + [json.dumps(out.headers, default=str).encode()]
        for blob in blobs:
            found.extend(
                f"{name} in a message on {out.queue}"
                for name, secret in needles.items()
                if secret.encode() in blob
            )
    return scanned, found


def scan_files(paths: Iterable[Path], needles: dict[str, str]) -> tuple[int, list[str]]:
    """Look for each secret in every line of every file; returns (lines scanned, findings)."""
    found: list[str] = []
    lines = 0
    for path in paths:
        if not path.exists():
            continue
        for n, line in enumerate(path.read_bytes().splitlines(), start=1):
            lines += 1
            for name, secret in needles.items():
                if secret.encode() in line:
                    found.append(f"{name} in {path.name}:{n}")
    return lines, found


@dataclass
class Audit:
    """The exact audit of one run."""

    expected: Counter[tuple[str, str, str, int, int]]
    billed: Counter[tuple[str, str, str, int, int]]
    missing_records: list[tuple[str, str, str, int, int]]
    extra_records: list[tuple[str, str, str, int, int]]
    double_billed: list[tuple[str, str, str, int, int]]
    lost_messages: list[int]
    valid_in_errors: dict[int, str]
    invalid_in_sink: list[int]
    invalid_without_error: list[int]
    unclear_errors: dict[int, str]
    non_success_results: dict[int, Any]
    duplicate_deliveries: int
    resubmitted: int  # stored records the emulator received more than once (deduplicated, billed once)
    foreign: int
    calls: int
    latencies_ms: list[int]
    first_emit_ms: int | None
    last_receipt_ms: int | None

    @classmethod
    def build(cls, flow: MeteringFlow) -> Audit:
        plan = flow.plan
        expected = plan.expected_records()
        stored = [r for r in flow.emulator.records() if r.get("productCode") == plan.product_code]
        billed: Counter[tuple[str, str, str, int, int]] = Counter(billed_key(r) for r in stored)
        conflicting = [billed_key(r) for r in stored if r.get("duplicatesRejected")]
        valid = set(plan.valid_indexes())
        lost = sorted(i for i in range(plan.messages) if i not in flow.sink and i not in flow.errors)
        valid_in_errors = {i: error_text(flow.errors[i][0].message) for i in valid if i in flow.errors}
        invalid = [i for i in range(plan.messages) if i not in valid]
        unclear = {}
        for i in invalid:
            if i in flow.errors:
                text = error_text(flow.errors[i][0].message)
                words = INVALID_KINDS[plan.invalid_kind(i) or ""]
                if not any(w in text for w in words):
                    unclear[i] = text
        non_success = {}
        ids = stored_ids(stored)
        for i in valid:
            for d in flow.sink.get(i, []):
                bad = _non_success(plan, i, d.message.get("body"), ids)
                if bad:
                    non_success[i] = bad
        lat = [
            d.received_ms - d.emitted_ms
            for v in flow.sink.values()
            for d in v[:1]
            if d.received_ms is not None and d.emitted_ms is not None
        ]
        emits = [d.emitted_ms for v in flow.sink.values() for d in v if d.emitted_ms is not None]
        receipts = [d.received_ms for v in flow.sink.values() for d in v if d.received_ms is not None]
        return cls(
            expected=expected,
            billed=billed,
            missing_records=sorted(set(expected) - set(billed)),
            extra_records=sorted(set(billed) - set(expected)),
            double_billed=sorted({k for k, n in billed.items() if n > 1} | set(conflicting)),
            lost_messages=lost,
            valid_in_errors=valid_in_errors,
            invalid_in_sink=sorted(i for i in invalid if i in flow.sink),
            invalid_without_error=sorted(i for i in invalid if i not in flow.errors),
            unclear_errors=unclear,
            non_success_results=non_success,
            duplicate_deliveries=flow.duplicates(),
            resubmitted=sum(1 for r in stored if int(r.get("submissions", 1)) > 1),
            foreign=len(flow.sink_foreign) + len(flow.errors_foreign),
            calls=flow.emulator.calls(plan.operation),
            latencies_ms=sorted(lat),
            first_emit_ms=min(emits) if emits else None,
            last_receipt_ms=max(receipts) if receipts else None,
        )

    @property
    def exact(self) -> bool:
        """Every expected record billed once, nothing else billed, every message where it belongs."""
        return not (
            self.missing_records
            or self.extra_records
            or self.double_billed
            or self.lost_messages
            or self.valid_in_errors
            or self.invalid_in_sink
            or self.invalid_without_error
            or self.unclear_errors
            or self.non_success_results
            or self.foreign
        )

    def problems(self) -> dict[str, Any]:
        """The non-empty findings (first few of each), for assertion messages."""
        out: dict[str, Any] = {}
        for name in (
            "missing_records",
            "extra_records",
            "double_billed",
            "lost_messages",
            "invalid_in_sink",
            "invalid_without_error",
        ):
            items = getattr(self, name)
            if items:
                out[name] = (len(items), items[:5])
        for name in ("valid_in_errors", "unclear_errors", "non_success_results"):
            items = getattr(self, name)
            if items:
                out[name] = (len(items), dict(list(items.items())[:3]))
        if self.foreign:
            out["foreign"] = self.foreign
        return out

    def percentile(self, p: float) -> float | None:
        if not self.latencies_ms:
            return None
        k = min(len(self.latencies_ms) - 1, max(0, round(p / 100 * (len(self.latencies_ms) - 1))))
        return float(self.latencies_ms[k])

    def records_per_second(self) -> float | None:
        if (
            self.first_emit_ms is None
            or self.last_receipt_ms is None
            or self.last_receipt_ms <= self.first_emit_ms
        ):
            return None
        return sum(self.expected.values()) / ((self.last_receipt_ms - self.first_emit_ms) / 1000)

    def table(self) -> str:
        """A short human-readable audit table."""
        rows = [
            ("records expected", sum(self.expected.values())),
            ("records billed (distinct)", len(self.billed)),
            (
                "missing / extra / double-billed",
                f"{len(self.missing_records)} / {len(self.extra_records)} / {len(self.double_billed)}",
            ),
            ("messages lost", len(self.lost_messages)),
            ("valid messages on the error queue", len(self.valid_in_errors)),
            (
                "invalid messages without a clear error",
                len(self.invalid_without_error) + len(self.unclear_errors) + len(self.invalid_in_sink),
            ),
            ("duplicate deliveries (at-least-once, harmless)", self.duplicate_deliveries),
            ("records re-sent and deduplicated by the service", self.resubmitted),
            ("metering API calls", self.calls),
            ("p50 / p99 latency ms", f"{self.percentile(50)} / {self.percentile(99)}"),
            ("AUDIT", "EXACT" if self.exact else "FAILED"),
        ]
        width = max(len(r[0]) for r in rows)
        return "\n".join(f"{name.ljust(width)}  {value}" for name, value in rows)


def error_text(msg: dict[str, Any]) -> str:
    """The ``message`` of a decrypted error (what a user reads), plus any structured details."""
    err = msg.get("error") or {}
    if not isinstance(err, dict):
        return str(err)
    extra = {k: v for k, v in err.items() if k not in ("name", "message", "stack")}
    return str(err.get("message", "")) + (" " + json.dumps(extra, default=str) if extra else "")


RecordIds = dict[tuple[str, str, int], str]


def stored_ids(stored: Iterable[dict[str, Any]]) -> RecordIds:
    """(customer, dimension, hour) → the MeteringRecordId the emulator gave the record it billed."""
    out: RecordIds = {}
    for rec in stored:
        product, customer, dimension, hour, _ = billed_key(rec)
        out[(customer, dimension, hour)] = str(rec.get("meteringRecordId"))
    return out


def _wrong_id(result: dict[str, Any], ids: RecordIds) -> str | None:
    """Why a result reported as Success does not name the id of the record billed (None when it does)."""
    rec = result.get("UsageRecord") or {}
    ts = rec.get("Timestamp")
    hour = _iso_hour(ts) if isinstance(ts, str) else int(float(ts or 0)) // 3600 * 3600
    customer = str(rec.get("CustomerIdentifier") or rec.get("CustomerAWSAccountId"))
    billed = ids.get((customer, str(rec.get("Dimension")), hour))
    reported = result.get("MeteringRecordId")
    return None if reported and reported == billed else f"reported {reported}, billed {billed}"


def _non_success(plan: UsagePlan, index: int, body: Any, ids: RecordIds) -> Any:
    """What is wrong with step 2's output for message ``index`` (empty when it reports success): a record
    not reported as Success, or reported without the MeteringRecordId of the record the emulator billed."""
    if not isinstance(body, dict):
        return {"body": body}
    if plan.fmt == "meter":
        return [] if body.get("MeteringRecordId") else {"no MeteringRecordId": sorted(body)}
    if plan.fmt == "resolve":
        want = plan.customers[index]
        got = body.get("CustomerIdentifier")
        return [] if got == want and body.get("ProductCode") == plan.product_code else {"resolved": got}
    if "Status" in body and "UsageRecord" in body:  # one message per record (emitPerRecord)
        if body["Status"] != "Success":
            return [body["Status"]]
        wrong = _wrong_id(body, ids)
        return [wrong] if wrong else []
    results = body.get("Results", body.get("results"))
    if not isinstance(results, list) or not results:
        return {"no results": sorted(body)}
    bad = [r.get("Status") for r in results if r.get("Status") != "Success"]
    bad += [wrong for r in results if r.get("Status") == "Success" and (wrong := _wrong_id(r, ids))]
    return bad
