"""Batch Meter Usage of any number of records: window check, chunking, resubmission, per-record results."""

from __future__ import annotations

import json
import logging
from typing import Any, NamedTuple

from .client import MeteringClient
from .errors import TRANSIENT, ErrorClass, MeteringError
from .operations import Operation
from .schema import parse_timestamp
from .validation import Problem

KNOWN_STATUSES = ("Success", "CustomerNotSubscribed", "DuplicateRecord", "TimestampOutOfBounds")
OUT_OF_WINDOW = "TimestampOutOfBounds"
MAX_RESUBMISSIONS = 5  # rounds of UnprocessedRecords per chunk before the message is rebounded
FUTURE_TOLERANCE = 300  # seconds a timestamp may lie in the future (clock skew)
_ENVELOPE = len('{"ProductCode":"","UsageRecords":[]}')

log = logging.getLogger(__name__)


class RecordResult(NamedTuple):
    """What happened to one incoming record."""

    position: int  # index of the record in the incoming message
    record: dict[str, Any]
    status: str
    metering_record_id: str | None = None
    request_id: str | None = None


class BatchOutcome:
    """All records' results plus the request ids of the calls made."""

    def __init__(self, results: list[RecordResult]) -> None:
        self.results = results
        self.request_ids: list[str] = []
        self.calls = 0


def window_bounds(now: float, hours: int) -> tuple[int, int]:
    """Accepted [earliest, latest] epoch seconds: hour-aligned ``hours`` back, a little into the future."""
    earliest = int(now // 3600 * 3600) - hours * 3600
    return earliest, int(now) + FUTURE_TOLERANCE


def _size(record: dict[str, Any]) -> int:
    return len(json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))


def chunk(indexes: list[int], records: list[dict[str, Any]], product_code: str | None,
          max_items: int, max_bytes: int) -> list[list[int]]:
    """Greedy split into calls of at most ``max_items`` records whose body stays under ``max_bytes``."""
    base = _ENVELOPE + len((product_code or "").encode("utf-8"))
    chunks: list[list[int]] = []
    current: list[int] = []
    size = base
    for index in indexes:
        record_size = _size(records[index]) + 1  # comma
        if base + record_size >= max_bytes:
            raise MeteringError("ValidationFailed", "a usage record is too large for one call",
                                operation="BatchMeterUsage",
                                problems=[Problem(f"/UsageRecords/{index}", f"serialises to {max_bytes} bytes or more")])
        if current and (len(current) >= max_items or size + record_size >= max_bytes):
            chunks.append(current)
            current, size = [], base
        current.append(index)
        size += record_size
    if current:
        chunks.append(current)
    return chunks


def _key(record: dict[str, Any]) -> tuple[Any, ...]:
    timestamp = record.get("Timestamp")
    epoch: Any
    try:
        epoch = parse_timestamp(timestamp)
    except ValueError:
        epoch = timestamp
    return (record.get("CustomerIdentifier"), record.get("CustomerAWSAccountId"), record.get("LicenseArn"),
            record.get("Dimension"), epoch, record.get("Quantity", 0) or 0)


def run_batch(op: Operation, client: MeteringClient, body: dict[str, Any], *, now: float,
              window_hours: int, out_of_window: str) -> BatchOutcome:
    """Send every record of ``body`` (timestamps already epoch seconds); raise only for whole-call failures."""
    assert op.batch_member is not None
    records: list[dict[str, Any]] = body.get(op.batch_member) or []
    product = body.get("ProductCode")
    earliest, latest = window_bounds(now, window_hours)
    outside = [i for i, r in enumerate(records) if not earliest <= r["Timestamp"] <= latest]
    if outside:
        log.warning("%d of %d usage record(s) fall outside the accepted timestamp window "
                    "(%d h, hour-aligned); record indexes: %s", len(outside), len(records), window_hours,
                    ", ".join(map(str, outside[:50])) + (" …" if len(outside) > 50 else ""))
        if out_of_window == "fail":
            raise MeteringError(
                "TimestampOutOfBoundsException", "records outside the timestamp window; nothing was sent",
                operation=op.name,
                problems=[Problem(f"/UsageRecords/{i}/Timestamp",
                                  f"is outside the accepted window of {window_hours} h") for i in outside])
    outcome = BatchOutcome(results=[RecordResult(i, records[i], OUT_OF_WINDOW) for i in outside])
    skipped = set(outside)
    pending = [i for i in range(len(records)) if i not in skipped]
    for part in chunk(pending, records, product, op.batch_max_items, op.batch_max_bytes):
        _send_chunk(op, client, product, records, part, outcome)
    outcome.results.sort(key=lambda r: r.position)
    return outcome


def _send_chunk(op: Operation, client: MeteringClient, product: str | None, records: list[dict[str, Any]],
                queue: list[int], outcome: BatchOutcome) -> None:
    rounds = 0
    while queue:
        payload: dict[str, Any] = {}
        if product is not None:
            payload["ProductCode"] = product
        payload[op.batch_member or ""] = [records[i] for i in queue]
        reply = client.call(op, payload)
        outcome.calls += 1
        if reply.request_id:
            outcome.request_ids.append(reply.request_id)
        waiting: dict[tuple[Any, ...], list[int]] = {}
        for index in queue:
            waiting.setdefault(_key(records[index]), []).append(index)
        for result in reply.data.get("Results") or []:
            echoed = result.get("UsageRecord") or {}
            slots = waiting.get(_key(echoed))
            if not slots:
                continue  # an echo we cannot place is ignored; its record is resubmitted below
            index = slots.pop(0)
            outcome.results.append(RecordResult(
                index, echoed or records[index], str(result.get("Status") or "Unknown"),
                result.get("MeteringRecordId"), reply.request_id))
        # Anything not answered (UnprocessedRecords, or missing) is sent again; dedupe makes that safe.
        queue = sorted(i for slots in waiting.values() for i in slots)
        if queue:
            rounds += 1
            log.info("%s: %d record(s) unprocessed, resubmitting (round %d)", op.name, len(queue), rounds)
            if rounds > MAX_RESUBMISSIONS:
                raise MeteringError(
                    "UnprocessedRecords", f"{len(queue)} record(s) still unprocessed after "
                    f"{MAX_RESUBMISSIONS} resubmissions", operation=op.name, request_id=reply.request_id,
                    classification=ErrorClass(True, TRANSIENT, "AWS reported them as transient failures"))
