"""Builders for connector tests: configs, messages and a step context like the sailor's."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lib.operations import OPERATIONS
from lib.runner import run

ACCESS_KEY = "AKIAEMULATOR0000TEST"
SECRET_KEY = "emulator/Secret+Key/DoNotUseInProduction00"
TEMP_ACCESS_KEY = "ASIAEMULATOR0000TEMP"
TEMP_SECRET_KEY = "emulator/Temp+Secret/DoNotUseInProduction0"
SESSION_TOKEN = "emulator-session-token-0000000000000000"
PRODUCT = "emu-demo-product-0001"
CUSTOMER = "cust-demo-0001"
ACCOUNT = "111122223333"
LICENSE = "arn:aws:license-manager::111122223333:license:l-0123456789abcdef0123456789abcdef"
REG_TOKEN = "emu-demo-registration-token-0001"


def a_config(url: str, **overrides: Any) -> dict[str, Any]:
    """Credentials and step fields pointing at the emulator."""
    cfg: dict[str, Any] = {"accessKeyId": ACCESS_KEY, "secretAccessKey": SECRET_KEY, "region": "us-east-1",
                           "endpointUrl": url}
    cfg.update(overrides)
    return {k: v for k, v in cfg.items() if v is not None}


def a_message(body: Any, msg_id: str | None = None) -> dict[str, Any]:
    """An incoming message as the sailor hands it to ``process``."""
    return {"id": msg_id or str(uuid.uuid4()), "body": body, "headers": {}, "attachments": {},
            "passthrough": {}, "metadata": {}}


def hour_start(offset_hours: int = 0) -> int:
    """Epoch seconds of the start of the current hour, shifted."""
    return int(time.time() // 3600 * 3600) + offset_hours * 3600


# One hour for the whole session (the previous one, well inside every window), so that two calls of a
# test never straddle an hour boundary and miss each other's dedupe.
SESSION_HOUR = hour_start(-1)


def a_record(customer: str = CUSTOMER, dimension: str = "users", quantity: int = 1,
             timestamp: Any = None) -> dict[str, Any]:
    """A usage record for Batch Meter Usage."""
    return {"Timestamp": SESSION_HOUR if timestamp is None else timestamp, "CustomerIdentifier": customer,
            "Dimension": dimension, "Quantity": quantity}


@dataclass
class StepContext:
    """What ``self`` offers a component function: emit, logger, message_id."""

    message_id: str | None = None
    events: list[tuple[str, Any]] = field(default_factory=list)
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger(f"spec.step.{uuid.uuid4().hex[:8]}"))

    def emit(self, event: str, payload: Any) -> None:
        """Record an emitted event."""
        self.events.append((event, payload))


def run_action(action: str, body: Any, cfg: dict[str, Any], *, msg_id: str | None = None,
               ctx: StepContext | None = None, **kwargs: Any) -> Any:
    """Run one action through the shared runner, as the sailor would."""
    return run(OPERATIONS[action], ctx or StepContext(), a_message(body, msg_id), cfg, **kwargs)


def default_fixtures(**credential: Any) -> dict[str, Any]:
    """The emulator's start-up fixtures, with the main credential (ACCESS_KEY) changed by ``credential``
    (e.g. ``deniedOperations``, ``resourceRegion``, ``platform``, ``expired``)."""
    return {
        "credentials": [
            {"accessKeyId": ACCESS_KEY, "secretAccessKey": SECRET_KEY, "accountId": ACCOUNT, **credential},
            {"accessKeyId": TEMP_ACCESS_KEY, "secretAccessKey": TEMP_SECRET_KEY, "sessionToken": SESSION_TOKEN,
             "accountId": "444455556666"},
        ],
        "products": [{"productCode": PRODUCT, "dimensions": ["users", "api_calls", "storage_gb"],
                      "customers": [{"customerIdentifier": CUSTOMER}, {"customerIdentifier": "cust-demo-0002"},
                                    {"customerAWSAccountId": ACCOUNT, "licenseArn": LICENSE}]}],
        "registrationTokens": [{"token": REG_TOKEN, "productCode": PRODUCT,
                                "customer": {"customerIdentifier": CUSTOMER}}],
    }


def run_together(fn: Callable[[int], Any], n: int = 8, timeout: float = 60.0) -> list[Any]:
    """``fn(i)`` for i in 0..n-1 on n threads released at once (a barrier); each result or the exception it
    raised, in order. Bounded in time: a thread still running after ``timeout`` fails the test."""
    out: list[Any] = [None] * n
    gate = threading.Barrier(n, timeout=timeout)

    def work(i: int) -> None:
        gate.wait()
        try:
            out[i] = fn(i)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            out[i] = exc

    workers = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(n)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout)
    assert not any(w.is_alive() for w in workers), "a worker hung"
    return out
