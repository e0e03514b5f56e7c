"""Batch Meter Usage of any number of records: window, summing, chunking, isolation, resubmission.

The steps, in order (docs/metering-api.md has the AWS rules each one follows):

1. **Window.** AWS refuses a whole call when one record's timestamp is out of bounds, so records it
   would refuse are taken out first (:func:`window_bounds`: 24 h back, hour-aligned, and nothing of the
   previous month after 06:00 UTC on the 1st) and reported as ``TimestampOutOfBounds``.
2. **Wire form.** Each record is rewritten to decimal quantity members (:mod:`lib.quantity`).
3. **Summing** (step option ``sameHourRecords: sum``): records of one customer (and license), dimension
   and hour become one record, allocations merged by tag set. AWS would keep only the first of them.
4. **Chunks** of at most 25 records and under 1 MB (:func:`chunk`).
5. **Isolation.** A call refused for something one record carries (a dimension, a tag, a timestamp …)
   is split in halves until the bad records stand alone; every other record is still metered and the
   bad ones are reported ``Rejected`` (or ``TimestampOutOfBounds``) with AWS's code and message.
6. **Resubmission** of ``UnprocessedRecords`` (and of records AWS did not answer for) with backoff;
   AWS deduplicates, so sending a record again is safe.

Every incoming record ends with exactly one :class:`RecordResult`. A failure that stops the message
after some records were billed carries those records (:attr:`BatchFailure.billed`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, NamedTuple

from . import jsontext, quantity
from .client import MeteringClient
from .errors import TRANSIENT, ErrorClass, MeteringError
from .operations import Operation
from .schema import parse_timestamp
from .validation import Problem

SUCCESS, OUT_OF_WINDOW, REJECTED = "Success", "TimestampOutOfBounds", "Rejected"
KNOWN_STATUSES = (SUCCESS, "CustomerNotSubscribed", "DuplicateRecord", OUT_OF_WINDOW, REJECTED)
MAX_RESUBMISSIONS = 5  # rounds of UnprocessedRecords per chunk before the message is rebounded
FUTURE_TOLERANCE = 300  # seconds a timestamp may lie in the future (clock skew)
MONTH_END_GRACE = 6 * 3600  # previous-month records are accepted until 06:00 UTC on the 1st
# Whole-call refusals caused by something a single record carries: worth isolating that record.
ISOLATABLE = frozenset({
    "InvalidUsageDimensionException", "InvalidTagException", "InvalidUsageAllocationsException",
    "TimestampOutOfBoundsException", "ValidationException", "InvalidCustomerIdentifierException",
    "InvalidLicenseException",
})
# Calls a message may spend on isolating bad records (a chunk of 25 bad records takes 49); past it the
# message fails, reporting what was billed. Bounds the cost of a flow whose every record is wrong.
MAX_ISOLATION_CALLS = 100
_ENVELOPE = len('{"ProductCode":"","UsageRecords":[]}')

log = logging.getLogger(__name__)


class RecordResult(NamedTuple):
    """What happened to one incoming record."""

    position: int  # index of the record in the incoming message
    record: dict[str, Any]  # the incoming record (epoch Timestamp)
    status: str
    metering_record_id: str | None = None
    request_id: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    billed_quantity: str | None = None  # decimal string of the record sent (the sum, when summed)
    summed: tuple[int, ...] = ()  # positions summed into the record billed (only when summing merged some)


class BatchOutcome:
    """All records' results plus the request ids of the calls made."""

    def __init__(self, results: list[RecordResult]) -> None:
        self.results = results
        self.request_ids: list[str] = []
        self.calls = 0
        self.isolation_calls = 0


class BatchFailure(MeteringError):
    """A whole-message failure after which ``billed`` records had already been metered."""

    def __init__(self, cause: MeteringError, billed: list[RecordResult]) -> None:
        self.cause = cause
        self.billed = billed
        super().__init__(cause.code, cause.aws_message, operation=cause.operation, status=cause.status,
                         request_id=cause.request_id, problems=cause.problems,
                         classification=cause.classification)

    def _text(self) -> str:
        text = super()._text()
        billed = getattr(self, "billed", [])
        if billed:
            text += (f"; {len(billed)} record(s) had been metered before this failure "
                     f"(their ids are in billedRecords)")
        return text

    @property
    def error_details(self) -> dict[str, Any]:
        """The cause's details plus every record billed before it (index, status, id)."""
        details = super().error_details
        details["billedRecords"] = [
            {"RecordIndex": r.position, "Status": r.status, "MeteringRecordId": r.metering_record_id,
             "RequestId": r.request_id} for r in self.billed]
        return details


class _Unit(NamedTuple):
    """One record as sent: the wire record and the incoming positions it stands for."""

    positions: tuple[int, ...]
    wire: dict[str, Any]


def month_start(now: float) -> int:
    """Epoch seconds of 00:00 UTC on the first day of ``now``'s month."""
    moment = datetime.fromtimestamp(now, tz=UTC)
    return int(datetime(moment.year, moment.month, 1, tzinfo=UTC).timestamp())


def window_bounds(now: float, hours: int) -> tuple[int, int]:
    """Accepted [earliest, latest] epoch seconds for BatchMeterUsage at ``now``.

    ``hours`` back from the start of the current hour; from 06:00 UTC on the 1st, nothing before the
    month began (the month-end cut-off); a little into the future for clock skew.
    """
    earliest = int(now // 3600 * 3600) - hours * 3600
    start = month_start(now)
    if now >= start + MONTH_END_GRACE:
        earliest = max(earliest, start)
    return earliest, int(now) + FUTURE_TOLERANCE


def chunk(indexes: list[int], records: list[dict[str, Any]], product_code: str | None,
          max_items: int, max_bytes: int) -> list[list[int]]:
    """Greedy split into calls of at most ``max_items`` records whose body stays under ``max_bytes``."""
    base = _ENVELOPE + len((product_code or "").encode("utf-8"))
    if len(indexes) <= max_items and indexes:
        # One call if the whole list fits: its JSON is the records', a comma each and the brackets, so
        # base + that - 1 is the size the loop below would reach (one serialisation instead of one a record).
        if base + jsontext.size([records[i] for i in indexes]) - 1 < max_bytes:
            return [list(indexes)]
    chunks: list[list[int]] = []
    current: list[int] = []
    size = base
    for index in indexes:
        record_size = jsontext.size(records[index]) + 1  # comma
        if base + record_size >= max_bytes:
            raise MeteringError("ValidationFailed", "a usage record is too large for one call",
                                operation="BatchMeterUsage",
                                problems=[Problem(f"/UsageRecords/{index}",
                                                  f"serialises to {max_bytes} bytes or more")])
        if current and (len(current) >= max_items or size + record_size >= max_bytes):
            chunks.append(current)
            current, size = [], base
        current.append(index)
        size += record_size
    if current:
        chunks.append(current)
    return chunks


def _epoch(value: Any) -> Any:
    try:
        return parse_timestamp(value)
    except ValueError:
        return value


def _who(record: dict[str, Any]) -> tuple[str, str, str]:
    # Absent and empty are the same to AWS (an echo may leave out what was sent empty).
    return (record.get("CustomerIdentifier") or "", record.get("CustomerAWSAccountId") or "",
            record.get("LicenseArn") or "")


def match_key(record: dict[str, Any]) -> tuple[Any, ...]:
    """What identifies a record in AWS's answer: customer, license, dimension, time, quantity by value.

    Robust to the forms an echo may take: quantity as another decimal string or with ``Quantity: 0``
    added, the timestamp as epoch seconds or ISO, empty members left out.
    """
    return (*_who(record), record.get("Dimension"), _epoch(record.get("Timestamp")),
            quantity.value_of(record, quantity.RECORD))


def _same(wire: dict[str, Any], echoed: dict[str, Any]) -> bool:
    """``match_key(wire) == match_key(echoed)``, answered from the members as sent when the echo repeats them
    exactly (the usual answer: the same decimal text, the same epoch seconds), by value otherwise."""
    get, sent = echoed.get, wire.get
    text, stamp = sent("QuantityAsDecimal"), sent("Timestamp")
    if (text is not None and get("QuantityAsDecimal") == text and type(stamp) is int and get("Timestamp") == stamp
            and get("Dimension") == sent("Dimension") and get("CustomerIdentifier") == sent("CustomerIdentifier")
            and get("CustomerAWSAccountId") == sent("CustomerAWSAccountId")
            and get("LicenseArn") == sent("LicenseArn")):
        return True
    return match_key(echoed) == match_key(wire)


def _sum_units(records: list[dict[str, Any]], positions: list[int]) -> list[_Unit]:
    """One unit per customer (and license), dimension and hour: quantities added, allocations merged."""
    groups: dict[tuple[Any, ...], list[int]] = {}
    for position in positions:
        record = records[position]
        key = (*_who(record), record["Dimension"], int(record["Timestamp"]) // 3600)
        groups.setdefault(key, []).append(position)
    units: list[_Unit] = []
    for members in groups.values():
        wires = [quantity.to_wire(records[p], quantity.RECORD) for p in members]
        merged = _merge(wires) if len(members) > 1 else wires[0]
        if merged is None:
            log.warning("BatchMeterUsage: %d same-hour records (indexes %s) cannot be summed into one (the sum "
                        "or the allocations exceed AWS's limits); sending them as they are",
                        len(members), ", ".join(map(str, members[:20])))
            units.extend(_Unit((p,), w) for p, w in zip(members, wires, strict=True))
        else:
            units.append(_Unit(tuple(members), merged))
    return units


def _merge(wires: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Sum wire records of one customer, dimension and hour; None when the result would be invalid."""
    total = sum((quantity.value_of(w, quantity.RECORD) for w in wires), Decimal(0))
    if not quantity.fits(total):
        return None
    merged = {key: value for key, value in wires[0].items()
              if key not in (quantity.ALLOCATIONS, *quantity.RECORD)}
    merged["Timestamp"] = min(w["Timestamp"] for w in wires)
    merged[quantity.RECORD.decimal] = quantity.render(total)
    if any(quantity.ALLOCATIONS in w for w in wires):
        buckets: dict[frozenset[tuple[str, str]], tuple[list[dict[str, str]] | None, Decimal]] = {}
        for wire in wires:
            # A record without allocations counts as one untagged bucket of its whole quantity.
            allocations = wire.get(quantity.ALLOCATIONS) or [
                {quantity.ALLOCATION.decimal: quantity.render(quantity.value_of(wire, quantity.RECORD))}]
            for allocation in allocations:
                key = quantity.tag_set(allocation)
                tags, amount = buckets.get(key, (allocation.get("Tags"), Decimal(0)))
                buckets[key] = (tags, amount + quantity.value_of(allocation, quantity.ALLOCATION))
        if len(buckets) > 2500 or not all(quantity.fits(amount) for _, amount in buckets.values()):
            return None
        merged[quantity.ALLOCATIONS] = [
            {quantity.ALLOCATION.decimal: quantity.render(amount), **({"Tags": tags} if tags else {})}
            for tags, amount in buckets.values()]
    return merged


def run_batch(op: Operation, client: MeteringClient, body: dict[str, Any], *, now: float, window_hours: int,
              out_of_window: str, same_hour: str = "send", sleep: Callable[[float], None] = time.sleep) -> BatchOutcome:
    """Send every record of ``body`` (timestamps already epoch seconds); raise only for whole-call failures.

    A failure raised after some records were billed is a :class:`BatchFailure` listing them.
    """
    assert op.batch_member is not None
    records: list[dict[str, Any]] = body.get(op.batch_member) or []
    product = body.get("ProductCode") or None
    earliest, latest = window_bounds(now, window_hours)
    outside = [i for i, r in enumerate(records) if not earliest <= r["Timestamp"] <= latest]
    if outside:
        log.warning("%d of %d usage record(s) fall outside the accepted timestamp window "
                    "(%d h, hour-aligned, month-end cut-off at 06:00 UTC on the 1st); record indexes: %s",
                    len(outside), len(records), window_hours,
                    ", ".join(map(str, outside[:50])) + (" …" if len(outside) > 50 else ""))
        if out_of_window == "fail":
            raise MeteringError(
                "TimestampOutOfBoundsException", "records outside the timestamp window; nothing was sent",
                operation=op.name,
                problems=[Problem(f"/UsageRecords/{i}/Timestamp",
                                  f"is outside the accepted window of {window_hours} h (or of the previous "
                                  f"month after 06:00 UTC on the 1st)") for i in outside])
    outcome = BatchOutcome(results=[RecordResult(i, records[i], OUT_OF_WINDOW) for i in outside])
    skipped = set(outside)
    pending = [i for i in range(len(records)) if i not in skipped]
    if same_hour == "sum":
        units = _sum_units(records, pending)
    else:
        units = [_Unit((i,), quantity.to_wire(records[i], quantity.RECORD)) for i in pending]
    sender = _Sender(op, client, product, records, outcome, sleep)
    wires = [unit.wire for unit in units]
    try:
        for part in chunk(list(range(len(units))), wires, product, op.batch_max_items, op.batch_max_bytes):
            sender.send([units[i] for i in part])
    except MeteringError as err:
        billed = sorted((r for r in outcome.results if r.metering_record_id), key=lambda r: r.position)
        if billed:
            log.warning("%s stopped after metering %d record(s): %s", op.name, len(billed),
                        ", ".join(f"#{r.position}={r.metering_record_id}" for r in billed[:100]))
            raise BatchFailure(err, billed) from err
        raise
    outcome.results.sort(key=lambda r: r.position)
    return outcome


class _Sender:
    """Sends chunks of units, isolates records AWS refuses, resubmits unprocessed ones."""

    def __init__(self, op: Operation, client: MeteringClient, product: str | None, records: list[dict[str, Any]],
                 outcome: BatchOutcome, sleep: Callable[[float], None]) -> None:
        self.op, self.client, self.product, self.records = op, client, product, records
        self.outcome, self.sleep = outcome, sleep

    def send(self, units: list[_Unit]) -> None:
        """Meter ``units`` (one call, or several when a record has to be isolated)."""
        try:
            self._send_rounds(units)
        except MeteringError as err:
            if err.code not in ISOLATABLE:
                raise
            if len(units) == 1:
                self._reject(units[0], err)
                return
            if self.outcome.isolation_calls >= MAX_ISOLATION_CALLS:
                raise
            log.info("%s: %s refused a call of %d record(s); splitting it to isolate the record(s) at fault",
                     self.op.name, err.code, len(units))
            half = len(units) // 2
            self.outcome.isolation_calls += 2
            self.send(units[:half])
            self.send(units[half:])

    def _reject(self, unit: _Unit, err: MeteringError) -> None:
        status = OUT_OF_WINDOW if err.code == "TimestampOutOfBoundsException" else REJECTED
        log.warning("%s: record(s) %s refused: %s", self.op.name, ", ".join(map(str, unit.positions)), err)
        if err.request_id:
            self.outcome.request_ids.append(err.request_id)
        for position in unit.positions:
            self.outcome.results.append(RecordResult(
                position, self.records[position], status, None, err.request_id, err.code, err.aws_message,
                None, unit.positions if len(unit.positions) > 1 else ()))

    def _send_rounds(self, queue: list[_Unit]) -> None:
        rounds = 0
        while queue:
            payload: dict[str, Any] = {}
            if self.product is not None:
                payload["ProductCode"] = self.product
            payload[self.op.batch_member or ""] = [unit.wire for unit in queue]
            self.outcome.calls += 1
            reply = self.client.call(self.op, payload)
            if reply.request_id:
                self.outcome.request_ids.append(reply.request_id)
            results = reply.data.get("Results") or []
            if len(results) == len(queue) and all(_same(unit.wire, result.get("UsageRecord") or {})
                                                  for unit, result in zip(queue, results, strict=True)):
                # Every record answered, in the order sent (what AWS does): the pairing below would give the
                # same, since equal keys are paired in order there too.
                for unit, result in zip(queue, results, strict=True):
                    self._record(unit, result, reply.request_id)
                return
            waiting: dict[tuple[Any, ...], list[_Unit]] = {}
            for unit in queue:
                waiting.setdefault(match_key(unit.wire), []).append(unit)
            for result in results:
                echoed = result.get("UsageRecord") or {}
                slots = waiting.get(match_key(echoed))
                if not slots:
                    continue  # an echo we cannot place is ignored; its record is resubmitted below
                self._record(slots.pop(0), result, reply.request_id)
            # Anything not answered (UnprocessedRecords, or missing) is sent again; dedupe makes that safe.
            queue = [unit for slots in waiting.values() for unit in slots]
            if queue:
                rounds += 1
                if rounds > MAX_RESUBMISSIONS:
                    raise MeteringError(
                        "UnprocessedRecords", f"{len(queue)} record(s) still unprocessed after "
                        f"{MAX_RESUBMISSIONS} resubmissions", operation=self.op.name, request_id=reply.request_id,
                        classification=ErrorClass(True, TRANSIENT, "AWS reported them as transient failures"))
                delay = self.client.backoff.delay(rounds - 1)
                log.info("%s: %d record(s) unprocessed, resubmitting in %.2f s (round %d)", self.op.name,
                         len(queue), delay, rounds)
                self.sleep(delay)

    def _record(self, unit: _Unit, result: dict[str, Any], request_id: str | None) -> None:
        status = str(result.get("Status") or "Unknown")
        sent = unit.wire.get(quantity.RECORD.decimal)  # the wire always carries the decimal member
        billed = (quantity.canonical(sent) if isinstance(sent, str)
                  else quantity.render(quantity.value_of(unit.wire, quantity.RECORD)))
        summed = unit.positions if len(unit.positions) > 1 else ()
        record_id = result.get("MeteringRecordId")
        for position in unit.positions:
            self.outcome.results.append(RecordResult(
                position, self.records[position], status, record_id, request_id, None, None, billed, summed))
