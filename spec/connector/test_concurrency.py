"""Concurrency and shared state of the connector: many messages of one step at once (worker threads), and
secrets learnt at run time over a long-running container's session rotations."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from metering_emulator.testing import EmulatorServer

import lib.credentials
import lib.redact
from lib import client as client_module
from lib.client import Settings
from spec.connector.builders import REG_TOKEN, a_config, run_action, run_together


class _Rotating:
    """A botocore-like refreshable credential that hands out a new session every time (rotation)."""

    def __init__(self) -> None:
        self.n = 0
        self.method = "assume-role"

    def get_frozen_credentials(self) -> Any:
        from botocore.credentials import ReadOnlyCredentials

        self.n += 1
        return ReadOnlyCredentials(f"ASIAROTATING{self.n:08d}", f"secret/{self.n:08d}/" + "s" * 28,
                                   f"token-{self.n:08d}-" + "t" * 600)


def test_given_sessions_rotating_then_the_registries_of_learnt_secrets_stay_bounded_to_the_last_two_sessions(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Each rotated session's key and token are registered for masking (lib/redact.py _RUNTIME, and the sailor's
    REDACTOR, which recompiles its pattern on each rotation, under the signer's locks): only the last two
    generations stay, so a long-running role-mode container does not mask ever more slowly."""
    from elasticio_sailor import logs

    monkeypatch.setattr(lib.redact, "_RUNTIME", set())
    monkeypatch.setattr(lib.redact, "_OWNED", {})
    monkeypatch.setattr(logs, "REDACTOR", logs.Redactor())
    settings = Settings.create(auth_mode="assumeRole", access_key_id="AKIAEXAMPLEEXAMPLE00",
                               secret_access_key="x" * 40, role_arn="arn:aws:iam::111122223333:role/r")
    creds = lib.credentials.RoleCredentials(settings)
    rotating = _Rotating()
    monkeypatch.setattr(creds, "_resolve", lambda: rotating)
    monkeypatch.setattr(creds, "_tune", lambda c: None)
    sizes = []
    for _ in range(150):  # 15-minute sessions: about 190 rotations a day
        frozen = creds.get_frozen_credentials()
        sizes.append((len(lib.redact._RUNTIME), len(logs.REDACTOR._strict_secrets)))
    assert sizes[-1] == sizes[10] and sizes[-1][1] == 4  # two sessions' secret key and token, no more
    # the current session (and the one before, whose calls may still be answered) stay masked everywhere
    line = f"refused: {frozen.token} / {frozen.secret_key}"
    assert frozen.token not in logs.REDACTOR(line) and frozen.token not in lib.redact.scrub_known(line, ())
    assert frozen.secret_key not in logs.REDACTOR.strict(line)
    # a session rotated out long ago is worth nothing: no longer carried by every masked line
    old = _Rotating()
    old.n = 99
    stale = old.get_frozen_credentials()
    assert stale.token in logs.REDACTOR(stale.token) and stale.token in lib.redact.scrub_known(stale.token, ())


def test_given_a_client_evicted_from_the_cache_mid_call_then_its_calls_still_succeed(
        metering_emulator: EmulatorServer) -> None:
    """_CLIENTS evicts (closes) a client while another thread is mid-call: its calls still succeed."""
    metering_emulator.admin.set_config(quotas=False)
    metering_emulator.admin.add_fault(type="latency", latencyMs=400, operations=["ResolveCustomer"])
    cfg = a_config(metering_emulator.url)
    mine = client_module.client_for(Settings.from_cfg(cfg))
    outcome: list[Any] = []

    def call() -> None:
        try:
            outcome.append(run_action("resolveCustomer", {"RegistrationToken": REG_TOKEN}, cfg, client=mine))
            outcome.append(run_action("resolveCustomer", {"RegistrationToken": REG_TOKEN}, cfg, client=mine))
        except BaseException as exc:  # noqa: BLE001
            outcome.append(exc)

    worker = threading.Thread(target=call, daemon=True)
    worker.start()
    time.sleep(0.15)
    for n in range(20):  # evicts ``mine`` (closes its session) while its call is in flight
        client_module.client_for(Settings.from_cfg(a_config(metering_emulator.url, sessionToken=f"tok-{n:04d}x")))
    assert all(c is not mine for c in client_module._CLIENTS.values())
    worker.join(30)
    assert len(outcome) == 2 and all(isinstance(o, dict) for o in outcome), outcome


def test_given_the_same_message_processed_concurrently_then_it_is_billed_once_with_one_id(
        metering_emulator: EmulatorServer) -> None:
    """A redelivery running while the first delivery is still in flight: one ClientToken, one billed record;
    identical batch records answered with the same MeteringRecordId."""
    from spec.connector.builders import PRODUCT, a_record, hour_start

    metering_emulator.admin.set_config(quotas=False)
    metering_emulator.admin.add_fault(type="latency", latencyMs=200)
    cfg = a_config(metering_emulator.url, callsPerSecond="100")
    body = {"ProductCode": PRODUCT, "Timestamp": hour_start(), "UsageDimension": "users", "UsageQuantity": 3}
    single = run_together(lambda i: run_action("meterUsage", body, cfg, msg_id="redelivered-1")["body"])
    assert len({r["MeteringRecordId"] for r in single}) == 1 and len({r["ClientToken"] for r in single}) == 1
    batch = {"ProductCode": PRODUCT, "UsageRecords": [a_record(customer="cust-demo-0002", dimension=d)
                                                      for d in ("users", "api_calls", "storage_gb")]}
    outs = run_together(lambda i: run_action("batchMeterUsage", batch, cfg, msg_id="redelivered-2")["body"], n=4)
    ids = {tuple(r["MeteringRecordId"] for r in out["Results"]) for out in outs}
    assert len(ids) == 1 and all(out["AllSucceeded"] for out in outs), outs
    billed = metering_emulator.admin.records()["records"]
    assert len(billed) == 4 and all(r["submissions"] >= 1 for r in billed)
