"""Batch Meter Usage of any number of records: window, summing, chunking, isolation, resubmission.

The steps, in order (docs/metering-api.md has the AWS rules each one follows):

1. **Window.** AWS refuses a whole call when one record's timestamp is out of bounds, so records it
   would refuse are taken out first (:func:`window_bounds`: less than 24 h old, exactly as the model says,
   and nothing of the previous month after 06:00 UTC on the 1st) and reported as ``TimestampOutOfBounds``.
2. **Wire form.** Each record is rewritten to decimal quantity members (:mod:`lib.quantity`).
3. **Summing** (step option ``sameHourRecords: sum``): records of one customer (and license), dimension
   and hour become one record, allocations merged by tag set. AWS would keep only the first of them.
4. **Chunks** of at most 25 records and under 1 MB (:func:`chunk`).
5. **Isolation.** A call refused for something one record carries (a dimension, a tag, a timestamp …)
   is split in halves until the bad records stand alone; every other record is still metered and the
   bad ones are reported ``Rejected`` (or ``TimestampOutOfBounds``) with AWS's code and message. A summed
   record refused for its timestamp (its earliest member's) is sent again without that member.
6. **Resubmission** of ``UnprocessedRecords`` (and of records AWS did not answer for) with backoff;
   AWS deduplicates, so sending a record again is safe. Only records not yet answered are resubmitted,
   and a resubmission refused for one record isolates among those alone: a record answered once (billed
   or not) is never sent or reported again.
7. **Window again, before every call** (each chunk, resubmission round and isolation call): a long
   message may outlive the month-end cut-off or a record's 24 h while it is sent, and AWS would then
   refuse every later call carrying such a record. The window is checked at the time of the call
   (``clock``): records now outside are reported ``TimestampOutOfBounds`` as in step 1, without being
   sent, and the rest of the call is sent (a summed record loses only its members now outside). With
   ``out_of_window: fail`` nothing more is sent: the message fails naming them (and what was billed).
   It costs one comparison per call until the message's oldest record leaves the window, then one per
   record of each call.

Every incoming record ends with exactly one :class:`RecordResult`. A failure that stops the message
after some records were billed carries those records (:attr:`BatchFailure.billed`).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, NamedTuple

from . import jsontext, quantity
from .client import MeteringClient
from .errors import TRANSIENT, ErrorClass, MeteringError
from .operations import OPERATIONS, Operation
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
# Refusals of a record's timestamp: a summed record carries its earliest member's (see _Sender._refused_alone).
_TIMESTAMP_REFUSALS = frozenset({"TimestampOutOfBoundsException", "InvalidLicenseException"})
# Calls a message may spend on isolating bad records (a chunk of 25 bad records takes 49); past it the
# message fails, reporting what was billed. Bounds the cost of a flow whose every record is wrong.
MAX_ISOLATION_CALLS = 100
_ENVELOPE = len('{"ProductCode":"","UsageRecords":[]}')
_MAX_CALL_BYTES = OPERATIONS["batchMeterUsage"].batch_max_bytes  # a call's body stays under this (chunk)
_LARGEST_ENVELOPE = _ENVELOPE + 255 + 1  # with the longest ProductCode (model: 1-255) and a comma

log = logging.getLogger(__name__)


# Said in the ErrorMessage of a record reported refused or out of the window after a call that carried it lost
# an answer: the output must not read as "not billed" when AWS may have billed it (README: Known limits).
_MAYBE_BILLED = ("; an earlier attempt to send this record got no answer (connection lost): AWS may have billed "
                 "it then (look for its usage in AWS before sending it again)")


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
        if cause.unanswered:  # the call in flight may have been billed: still said in the text and details
            self.after_unanswered(cause.unanswered)

    def _text(self) -> str:
        text = super()._text()
        billed = getattr(self, "billed", [])
        if billed:
            # A retryable failure is rebounded, not emitted as an error: lib/runner.py logs the ids then.
            where = "the step's log" if self.retryable else "billedRecords"
            text += f"; {len(billed)} record(s) had been metered before this failure (their ids are in {where})"
        return text

    @property
    def error_details(self) -> dict[str, Any]:
        """The cause's details plus every record billed before it (index, status, id)."""
        details = super().error_details
        details["billedRecords"] = [
            {"RecordIndex": r.position, "Status": r.status, "MeteringRecordId": r.metering_record_id,
             "RequestId": r.request_id} for r in self.billed]
        return details


class _Refused(Exception):
    """A call refused with an isolatable error, and the units it carried: none of them answered yet.

    Raised by :meth:`_Sender._send_rounds` so that isolation splits only what is still unanswered: units
    answered by an earlier round of the same call were recorded and must never be sent or reported again.
    """

    def __init__(self, cause: MeteringError, units: list[_Unit]) -> None:
        super().__init__(str(cause))
        self.cause, self.units = cause, units


class _Unit(NamedTuple):
    """One record as sent: the wire record and the incoming positions it stands for."""

    positions: tuple[int, ...]
    wire: dict[str, Any]


def month_start(now: float) -> int:
    """Epoch seconds of 00:00 UTC on the first day of ``now``'s month."""
    moment = datetime.fromtimestamp(now, tz=UTC)
    return int(datetime(moment.year, moment.month, 1, tzinfo=UTC).timestamp())


# The month-end part of the window's lower bound, cached: it changes twice a month. [begin, until): while
# the time is in there, the bound is at least ``floor`` (None: the previous month is still accepted).
_month_part: list[tuple[float, float, int | None]] = [(0.0, 0.0, None)]


def earliest_accepted(now: float, hours: int) -> int:
    """``window_bounds(now, hours)[0]``: the first whole epoch second accepted at ``now``, cheap to ask
    before every call (the month-end part is computed once per half month, not once per call)."""
    begin, until, floor = _month_part[0]
    if not begin <= now < until:
        start = month_start(now)
        cut = start + MONTH_END_GRACE
        begin, until, floor = (start, cut, None) if now < cut else (cut, month_start(start + 32 * 86400), start)
        _month_part[0] = (begin, until, floor)
    earliest = math.floor(now) - hours * 3600 + 1  # the first whole second t with now - t < hours
    return earliest if floor is None or earliest >= floor else floor


def outside_problem(position: int, hours: int) -> Problem:
    """The problem reported for an incoming record outside the window (``out_of_window: fail``)."""
    return Problem(f"/UsageRecords/{position}/Timestamp",
                   f"is outside the accepted window (less than {hours} h old, and not of "
                   f"the previous month after 06:00 UTC on the 1st)")


def window_bounds(now: float, hours: int) -> tuple[int, int]:
    """Accepted [earliest, latest] whole epoch seconds (timestamps are whole seconds) for BatchMeterUsage at ``now``.

    Less than ``hours`` old, measured exactly from ``now`` (the model: records "aren't accepted 24 hours or
    more after an event", so one exactly ``hours`` old is refused); from 06:00 UTC on the 1st, nothing before
    the month began (the month-end cut-off); a little into the future for clock skew.
    """
    return earliest_accepted(now, hours), int(now) + FUTURE_TOLERANCE


def chunk(indexes: list[int], records: list[dict[str, Any]], product_code: str | None,
          max_items: int, max_bytes: int, positions: list[tuple[int, ...]] | None = None) -> list[list[int]]:
    """Greedy split into calls of at most ``max_items`` records whose body stays under ``max_bytes``.

    ``positions[index]`` are the incoming records ``records[index]`` stands for (when it is a unit, possibly
    summed): a record too large for one call is named by them; without it, by ``index``.
    """
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
            named = positions[index] if positions is not None else (index,)
            raise MeteringError("ValidationFailed", "a usage record is too large for one call",
                                operation="BatchMeterUsage",
                                problems=[Problem(f"/UsageRecords/{position}",
                                                  f"serialises to {max_bytes} bytes or more"
                                                  + (" (summed with the records of the same hour)"
                                                     if len(named) > 1 else ""))
                                          for position in named])
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
        if merged is not None and len(members) > 1 and jsontext.size(merged) + _LARGEST_ENVELOPE >= _MAX_CALL_BYTES:
            merged = None  # each member fits a call, their merged allocations would not
        if merged is None:
            log.warning("BatchMeterUsage: %d same-hour records (indexes %s) cannot be summed into one (the sum "
                        "or the allocations exceed AWS's limits, or the summed record would not fit one call); "
                        "sending them as they are",
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
              out_of_window: str, same_hour: str = "send", sleep: Callable[[float], None] = time.sleep,
              clock: Callable[[], float] | None = None) -> BatchOutcome:
    """Send every record of ``body`` (timestamps already epoch seconds); raise only for whole-call failures.

    ``now`` is the time of the first window check; ``clock`` tells the time of each call after it (step 7
    of the module docstring): lib/runner.py passes the step's clock (``time.time``). Without it, the time
    is ``now`` plus the time elapsed since (``time.monotonic``).
    A failure raised after some records were billed is a :class:`BatchFailure` listing them.
    """
    if clock is None:
        started = time.monotonic()

        def clock() -> float:
            return now + (time.monotonic() - started)
    assert op.batch_member is not None
    records: list[dict[str, Any]] = body.get(op.batch_member) or []
    product = body.get("ProductCode") or None
    earliest, latest = window_bounds(now, window_hours)
    outside = [i for i, r in enumerate(records) if not earliest <= r["Timestamp"] <= latest]
    if outside:
        log.warning("%d of %d usage record(s) fall outside the accepted timestamp window "
                    "(less than %d h old, month-end cut-off at 06:00 UTC on the 1st); record indexes: %s",
                    len(outside), len(records), window_hours,
                    ", ".join(map(str, outside[:50])) + (" …" if len(outside) > 50 else ""))
        if out_of_window == "fail":
            raise MeteringError(
                "TimestampOutOfBoundsException", "records outside the timestamp window; nothing was sent",
                operation=op.name,
                problems=[outside_problem(i, window_hours) for i in outside])
    outcome = BatchOutcome(results=[RecordResult(i, records[i], OUT_OF_WINDOW) for i in outside])
    skipped = set(outside)
    pending = [i for i in range(len(records)) if i not in skipped]
    if same_hour == "sum":
        units = _sum_units(records, pending)
    else:
        units = [_Unit((i,), quantity.to_wire(records[i], quantity.RECORD)) for i in pending]
    sender = _Sender(op, client, product, records, outcome, sleep,
                     _Window(clock, window_hours, out_of_window, units))
    wires = [unit.wire for unit in units]
    try:
        for part in chunk(list(range(len(units))), wires, product, op.batch_max_items, op.batch_max_bytes,
                          [unit.positions for unit in units]):
            sender.send([units[i] for i in part])
    except MeteringError as err:
        # Success only: AWS answers a DuplicateRecord with the id of the record it kept, not of this one
        billed = sorted((r for r in outcome.results if r.status == SUCCESS and r.metering_record_id),
                        key=lambda r: r.position)
        if billed:
            log.warning("%s stopped after metering %d record(s): %s", op.name, len(billed),
                        ", ".join(f"#{r.position}={r.metering_record_id}" for r in billed[:100]))
            raise BatchFailure(err, billed) from err
        raise
    outcome.results.sort(key=lambda r: r.position)
    return outcome


class _Window:
    """What the window check before each call needs (step 7 of the module docstring)."""

    def __init__(self, clock: Callable[[], float], hours: int, out_of_window: str, units: list[_Unit]) -> None:
        self.clock, self.hours, self.out_of_window, self.units = clock, hours, out_of_window, units
        # Nothing can have left the window while the bound is at most the oldest timestamp to be sent.
        self.oldest = min((unit.wire["Timestamp"] for unit in units), default=0)

    def earliest(self) -> int | None:
        """The window's lower bound now, or None while every unit of the message is still inside."""
        earliest = earliest_accepted(self.clock(), self.hours)
        return earliest if earliest > self.oldest else None


class _Sender:
    """Sends chunks of units, isolates records AWS refuses, resubmits unprocessed ones."""

    def __init__(self, op: Operation, client: MeteringClient, product: str | None, records: list[dict[str, Any]],
                 outcome: BatchOutcome, sleep: Callable[[float], None], window: _Window) -> None:
        self.op, self.client, self.product, self.records = op, client, product, records
        self.outcome, self.sleep, self.window = outcome, sleep, window
        # Positions carried by a call some attempt of which got no answer (the connection failed after the
        # request may have been sent), refused or answered: AWS may have billed them. Isolation, and the next
        # round for records left unprocessed, re-send them in new calls that do not know that, so the refusal
        # or window report of such a record says it here.
        self.maybe_billed: dict[int, list[int]] = {}

    def send(self, units: list[_Unit]) -> None:
        """Meter ``units`` (one call, or several when a record has to be isolated).

        Each unit is answered exactly once: when a call is refused for one record, only the units that call
        carried are split and sent again, never those an earlier round already answered (and recorded).
        """
        try:
            self._send_rounds(units)
        except _Refused as refused:
            err, rest = refused.cause, refused.units
            self._note_unanswered(rest, err.unanswered)
            if len(rest) == 1:
                self._refused_alone(rest[0], err)
                return
            if self.outcome.isolation_calls >= MAX_ISOLATION_CALLS:
                raise err from None
            current = self._in_window(rest)
            if current is not rest:  # some left the window since (reported): the others may well pass now
                if current:
                    self.outcome.isolation_calls += 1
                    self.send(current)
                return
            log.info("%s: %s refused a call of %d record(s); splitting it to isolate the record(s) at fault",
                     self.op.name, err.code, len(rest))
            half = len(rest) // 2
            self.outcome.isolation_calls += 2
            self.send(rest[:half])
            self.send(rest[half:])

    def _refused_alone(self, unit: _Unit, err: MeteringError) -> None:
        """A unit AWS refused on its own. A summed one carries its earliest member's timestamp, so a refusal
        of that timestamp (out of the window by AWS's clock, or before the license was activated) may be the
        earliest member's alone: those members are reported refused, and the rest of the hour is summed anew
        and sent (one isolation call each time; any other refusal concerns every member)."""
        if len(unit.positions) > 1 and err.code in _TIMESTAMP_REFUSALS and (
                self.outcome.isolation_calls < MAX_ISOLATION_CALLS):
            first = min(self.records[p]["Timestamp"] for p in unit.positions)
            rest = [p for p in unit.positions if self.records[p]["Timestamp"] > first]
            if rest:
                for position in unit.positions:
                    if self.records[position]["Timestamp"] == first:
                        self._reject(_Unit((position,), unit.wire), err)
                self.outcome.isolation_calls += 1
                self.send(_sum_units(self.records, rest))
                return
        self._reject(unit, err)

    def _reject(self, unit: _Unit, err: MeteringError) -> None:
        status = OUT_OF_WINDOW if err.code == "TimestampOutOfBoundsException" else REJECTED
        log.warning("%s: record(s) %s refused: %s%s", self.op.name, ", ".join(map(str, unit.positions)), err,
                    "" if err.unanswered else self._maybe_billed_note(unit.positions))
        if err.request_id:
            self.outcome.request_ids.append(err.request_id)
        for position in unit.positions:
            message = err.aws_message
            if err.unanswered or position in self.maybe_billed:
                message = f"{message}{_MAYBE_BILLED}" if message else _MAYBE_BILLED.removeprefix("; ")
            self.outcome.results.append(RecordResult(
                position, self.records[position], status, None, err.request_id, err.code, message,
                None, unit.positions if len(unit.positions) > 1 else ()))

    def _note_unanswered(self, units: list[_Unit], attempts: Sequence[int]) -> None:
        """Remember that the records of ``units`` were in a call whose ``attempts`` got no answer."""
        for unit in units if attempts else ():
            for position in unit.positions:
                self.maybe_billed.setdefault(position, list(attempts))

    def _maybe_billed_note(self, positions: Sequence[int]) -> str:
        """The log's note for records an earlier call carried when an attempt of it got no answer, or ""."""
        attempts = sorted({a for p in positions for a in self.maybe_billed.get(p, ())})
        if not attempts:
            return ""
        several = len(positions) > 1
        return (f"; an earlier call that carried {'them' if several else 'it'} got no answer to attempt"
                f"{'s' if len(attempts) > 1 else ''} {', '.join(map(str, attempts))} (connection lost), so AWS "
                f"may have billed {'them' if several else 'it'} then")

    def _log_billed(self, start: int, request_id: str | None) -> None:
        """One line naming the records billed by the reply just recorded (results from ``start`` on), as soon
        as AWS answered: should the process die before its output is published (a crash, the platform's
        SIGKILL after its grace period), and the redelivery find a record out of AWS's window, this line is
        where that record's id is."""
        if not log.isEnabledFor(logging.INFO):
            return
        billed = [r for r in self.outcome.results[start:] if r.status == SUCCESS and r.metering_record_id]
        if billed:
            log.info("%s: request %s billed %d record(s): %s", self.op.name, request_id, len(billed),
                     ", ".join(f"#{r.position}={r.metering_record_id}" for r in billed))

    def _send_rounds(self, queue: list[_Unit]) -> None:
        """Send ``queue``, then what AWS left unanswered, until every unit is answered (and recorded).

        An isolatable refusal raises :class:`_Refused` with the units of the refused call only (in any round:
        the units answered by earlier rounds are recorded already); any other failure propagates. Before each
        call the units that left the window meanwhile are taken out (:meth:`_in_window`).
        """
        rounds = 0
        while queue:
            queue = self._in_window(queue)
            if not queue:
                return
            payload: dict[str, Any] = {}
            if self.product is not None:
                payload["ProductCode"] = self.product
            payload[self.op.batch_member or ""] = [unit.wire for unit in queue]
            self.outcome.calls += 1
            try:
                reply = self.client.call(self.op, payload)
            except MeteringError as err:
                if err.code in ISOLATABLE:
                    raise _Refused(err, queue) from err
                raise
            if reply.request_id:
                self.outcome.request_ids.append(reply.request_id)
            self._note_unanswered(queue, reply.unanswered)  # a record left unprocessed may be billed already
            results = reply.data.get("Results") or []
            answered = len(self.outcome.results)
            if len(results) == len(queue) and all(_same(unit.wire, result.get("UsageRecord") or {})
                                                  for unit, result in zip(queue, results, strict=True)):
                # Every record answered, in the order sent (what AWS does): the pairing below would give the
                # same, since equal keys are paired in order there too.
                for unit, result in zip(queue, results, strict=True):
                    self._record(unit, result, reply.request_id)
                self._log_billed(answered, reply.request_id)
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
            self._log_billed(answered, reply.request_id)
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

    def _in_window(self, units: list[_Unit]) -> list[_Unit]:
        """``units`` (the same list) when all are inside the window now; else those inside, after reporting
        the records now outside ``TimestampOutOfBounds`` (not sent), or raising with ``out_of_window: fail``.

        A summed unit carries its earliest member's timestamp: its members still inside are summed anew.
        """
        earliest = self.window.earliest()
        if earliest is None:
            return units
        kept: list[_Unit] = []
        gone: list[int] = []
        for unit in units:
            if unit.wire["Timestamp"] >= earliest:
                kept.append(unit)
                continue
            left = [p for p in unit.positions if self.records[p]["Timestamp"] < earliest]
            gone.extend(left)
            if len(left) < len(unit.positions):  # a summed unit: the rest of its hour is still inside
                # (its sum is at most the one that fitted, so it fits: one unit, never more)
                kept.extend(_sum_units(self.records, [p for p in unit.positions if p not in left]))
        if not gone:
            return units
        if self.window.out_of_window == "fail":
            raise self._left_window(earliest)
        gone.sort()
        log.warning("%s: %d usage record(s) left the accepted timestamp window while the message was being sent "
                    "(less than %d h old, month-end cut-off at 06:00 UTC on the 1st); reported %s, not sent; "
                    "record indexes: %s%s", self.op.name, len(gone), self.window.hours, OUT_OF_WINDOW,
                    ", ".join(map(str, gone[:50])) + (" …" if len(gone) > 50 else ""),
                    self._maybe_billed_note([p for p in gone if p in self.maybe_billed]))
        self.outcome.results.extend(
            RecordResult(p, self.records[p], OUT_OF_WINDOW,
                         error_message=_MAYBE_BILLED.removeprefix("; ") if p in self.maybe_billed else None)
            for p in gone)
        return kept

    def _left_window(self, earliest: int) -> MeteringError:
        """``out_of_window: fail`` once records left the window mid-message: the error naming every record
        not answered yet that is outside now (run_batch adds the records billed so far)."""
        answered = {result.position for result in self.outcome.results}
        waiting = sorted(p for unit in self.window.units for p in unit.positions if p not in answered)
        outside = [p for p in waiting if self.records[p]["Timestamp"] < earliest]
        note = self._maybe_billed_note([p for p in waiting if p in self.maybe_billed])
        return MeteringError(
            "TimestampOutOfBoundsException",
            f"{len(outside)} record(s) left the timestamp window while the message was being sent (the month-end "
            f"cut-off or their {self.window.hours} h passed); they and the {len(waiting) - len(outside)} other "
            f"record(s) not answered yet were not sent{note}",
            operation=self.op.name, problems=[outside_problem(p, self.window.hours) for p in outside])

    def _record(self, unit: _Unit, result: dict[str, Any], request_id: str | None) -> None:
        status = str(result.get("Status") or "Unknown")
        billed: str | None = None  # only what AWS billed: a record of any other status was not billed (now)
        if status == SUCCESS:
            sent = unit.wire.get(quantity.RECORD.decimal)  # the wire always carries the decimal member
            billed = (quantity.canonical(sent) if isinstance(sent, str)
                      else quantity.render(quantity.value_of(unit.wire, quantity.RECORD)))
        summed = unit.positions if len(unit.positions) > 1 else ()
        record_id = result.get("MeteringRecordId")
        for position in unit.positions:
            self.outcome.results.append(RecordResult(
                position, self.records[position], status, record_id, request_id, None, None, billed, summed))
