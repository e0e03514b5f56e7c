"""Drills: the connector's Batch Meter Usage in the real Python sailor, stopped or failed mid-message.

Invariant under test: nothing double-billed; a message produces its output or an error; every record
billed is reported with its MeteringRecordId somewhere the seller can read (an output, an error, a log).
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from metering_emulator.testing import EmulatorServer

from spec.sailor.helpers import FakeApi, PlatformSide, SailorProc, sailor_env, step_doc, wait_until

REPO = Path(__file__).resolve().parents[2]
PRODUCT = "emu-demo-product-0001"
CUSTOMERS = ("cust-demo-0001", "cust-demo-0002")
DIMENSIONS = ("users", "api_calls", "storage_gb")


def records(count: int, oldest_age_s: int = 3600 * 20) -> list[dict[str, Any]]:
    """``count`` distinct records (customer, dimension, hour) inside the window."""
    now = int(time.time())
    out = []
    for i in range(count):
        hour_age = oldest_age_s - 3600 * (i // (len(CUSTOMERS) * len(DIMENSIONS)))
        out.append({"Timestamp": now - hour_age, "CustomerIdentifier": CUSTOMERS[i % 2],
                    "Dimension": DIMENSIONS[(i // 2) % 3], "QuantityAsDecimal": str(i + 1)})
    return out


@pytest.fixture
def emu() -> Any:
    with EmulatorServer(quotas=False) as server:
        yield server


_STARTED: list[SailorProc] = []  # every sailor a test started: killed when it ends (none outlives its broker)


@pytest.fixture(autouse=True)
def _no_sailor_left() -> Iterator[None]:
    yield
    while _STARTED:
        _STARTED.pop().kill()


def start(platform: PlatformSide, api: FakeApi, emu: Any, tmp_path: Path, n: int, **env: str) -> SailorProc:
    cfg = {"accessKeyId": "AKIAEMULATOR0000TEST", "secretAccessKey": "emulator/Secret+Key/DoNotUseInProduction00",
           "region": "us-east-1", "endpointUrl": emu.url, "callsPerSecond": "1"}
    api.routes[("GET", "/v1/tasks/flow1/steps/step_2")] = [(200, step_doc(function="batchMeterUsage", config=cfg,
                                                                          snapshot={}))] * 5
    proc = SailorProc(sailor_env(platform, api, "batchMeterUsage", LOG_LEVEL="info", **env),
                      tmp_path / f"sailor{n}.log", cwd=REPO)
    _STARTED.append(proc)
    proc.wait_consuming(platform)
    return proc


def billed_ids(emu: Any) -> dict[tuple[str, str, str], str]:
    return {(r["customerIdentifier"], r["dimension"], r["hour"]): r["meteringRecordId"]
            for r in emu.admin.records()["records"] if r.get("productCode") == PRODUCT}


def test_given_sigterm_mid_batch_then_the_sailor_finishes_the_message_and_publishes_the_whole_result(
    platform: PlatformSide, fake_api: FakeApi, emu: Any, tmp_path: Path
) -> None:
    """SIGTERM after the first of 4 calls: the sailor keeps metering (no deadline of its own, as Node), then
    publishes the result and acks; the platform's grace period decides whether it may."""
    sailor = start(platform, fake_api, emu, tmp_path, 1)
    platform.publish({"body": {"ProductCode": PRODUCT, "UsageRecords": records(100)}})
    wait_until(lambda: len(billed_ids(emu)) >= 25, 30, "first call billed")
    t0 = time.monotonic()
    sailor.proc.send_signal(signal.SIGTERM)
    assert sailor.wait(60) == 0
    assert time.monotonic() - t0 < 60
    [out] = platform.get("message")
    body = platform.decode(out)["body"]
    assert body["StatusCounts"]["Success"] == 100
    assert platform.unacked_or_ready() == 0 and platform.count(platform.dead) == 0


def test_given_sigkill_after_sigterm_mid_batch_then_the_redelivery_reports_every_billed_id_billed_once(
    platform: PlatformSide, fake_api: FakeApi, emu: Any, tmp_path: Path
) -> None:
    """Grace period shorter than the message: SIGKILL after SIGTERM; the redelivery reports the same ids."""
    sailor = start(platform, fake_api, emu, tmp_path, 1)
    platform.publish({"body": {"ProductCode": PRODUCT, "UsageRecords": records(100)}})
    wait_until(lambda: len(billed_ids(emu)) >= 50, 30, "two calls billed")
    sailor.proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    sailor.kill()  # the platform's SIGKILL at the end of its grace period
    first = billed_ids(emu)
    assert 50 <= len(first) < 100
    wait_until(lambda: platform.unacked_or_ready() == 1, 10, "the input back in the queue")
    again = start(platform, fake_api, emu, tmp_path, 2)
    [out] = platform.get("message", timeout=60)
    results = platform.decode(out)["body"]["Results"]
    assert all(r["Status"] == "Success" for r in results)
    ids = billed_ids(emu)
    assert len(ids) == 100 and all(r["submissions"] <= 2 for r in emu.admin.records()["records"])
    assert len(results) == 100
    assert {r["MeteringRecordId"] for r in results} == set(ids.values())  # every billed id reported
    assert again.terminate() == 0


def test_given_the_rebound_past_the_limit_after_partial_billing_then_its_error_names_every_billed_id(
    platform: PlatformSide, fake_api: FakeApi, emu: Any, tmp_path: Path
) -> None:
    """A partially billed batch failing retryably past the last allowed rebound: the message never comes
    back, so the error the platform gets ("Rebound limit exceeded", Node's text) names every billed id."""
    start(platform, fake_api, emu, tmp_path, 1, ELASTICIO_REBOUND_LIMIT="3")
    platform.publish({"body": {"ProductCode": PRODUCT, "UsageRecords": records(30)}}, {"reboundIteration": 3})
    wait_until(lambda: len(billed_ids(emu)) >= 25, 30, "first call billed")
    emu.admin.add_fault(type="error500", rate=1.0)  # the second call and its retries fail (retryable)
    [err] = platform.get("error", timeout=90)
    error = platform.cipher.decrypt(json.loads(err.body)["error"].encode(), 1)
    ids = set(billed_ids(emu).values())
    assert len(ids) == 25
    text = json.dumps(error)
    assert platform.count(platform.dead) == 0  # acked: the message will never come back
    assert platform.count("message") == 0
    assert error["message"] == "Rebound limit exceeded"  # Node's text, kept
    assert all(i in text for i in ids), f"billed ids missing from the only message the platform got: {error}"
    assert sorted(r["MeteringRecordId"] for r in error["billedRecords"]) == sorted(ids)


def test_given_a_crash_then_a_redelivery_out_of_the_window_then_the_billed_id_is_in_the_log(
    platform: PlatformSide, fake_api: FakeApi, emu: Any, tmp_path: Path
) -> None:
    """Killed after billing a record close to the 24 h edge; the redelivery finds it outside the window and
    reports it TimestampOutOfBounds: the killed process logged its id as soon as AWS answered."""
    sailor = start(platform, fake_api, emu, tmp_path, 1)
    recs = records(26)
    edge = int(time.time()) - 24 * 3600 + 6  # inside the window for 6 more seconds
    recs[0] = {**recs[0], "Timestamp": edge}
    platform.publish({"body": {"ProductCode": PRODUCT, "UsageRecords": recs}})
    wait_until(lambda: len(billed_ids(emu)) >= 25, 30, "first call billed")
    # the crash comes after the step had AWS's answer (a kill between AWS billing and the answer arriving is a
    # lost reply, a documented limit): while the second call waits for its pacing slot (1 call/s)
    wait_until(lambda: "billed 25 record(s)" in sailor.log(), 30, "the first answer handled")
    sailor.kill()
    first_log = sailor.log()
    ids = billed_ids(emu)
    edge_id = next(r["meteringRecordId"] for r in emu.admin.records()["records"]
                   if r["timestamp"] == edge or r.get("timestamp") == float(edge))
    time.sleep(7)
    start(platform, fake_api, emu, tmp_path, 2)
    [out] = platform.get("message", timeout=60)
    first = platform.decode(out)["body"]["Results"][0]
    logs = first_log + (tmp_path / "sailor2.log").read_text()
    assert len(ids) == 25
    # the invariant: a billed record is reported with its id (in the output, or at least in a log line)
    assert first.get("MeteringRecordId") == edge_id or edge_id in logs, (
        f"record 0 was billed as {edge_id} but is reported {first['Status']} without an id, and no log "
        "line of either process names the id")


