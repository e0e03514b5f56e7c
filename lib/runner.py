"""The shared runner every action binds to: validate, map, call, shape the result, or raise."""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from collections.abc import Callable
from typing import Any

from . import jsontext, quantity
from .batch import KNOWN_STATUSES, BatchFailure, BatchOutcome, RecordResult, run_batch
from .client import MeteringClient, client_for, settings_for
from .errors import DRY_RUN, MeteringError
from .operations import Operation
from .options import StepOptions
from .redact import guard, secret_values
from .schema import epochs_to_iso, json_schema, timestamps_to_epoch
from .validation import batch_problems, problems, request_problems

# Namespace of the ClientTokens derived from message ids (any fixed UUID; changing it re-bills redeliveries).
TOKEN_NAMESPACE = uuid.UUID("6f1d3a52-8a4e-4c1e-9a57-3f0c8f2b7d10")

# Answers to a DryRun call that mean "not permitted" rather than a failure.
DRY_RUN_DENIED = ("UnauthorizedException", "AccessDeniedException")

# A rebound's reason travels in the redelivered message's AMQP headers (``reboundReason``): keep it short.
REBOUND_REASON_IDS = 10  # billed records named in the reason (all of them are in the step's log)
BILLED_PER_LOG_LINE = 100

log = logging.getLogger(__name__)


def validate_body(op: Operation, body: Any) -> None:
    """Raise one ValidationFailed error listing every problem of the message body."""
    found = problems(op.in_schema, body)
    if not found and isinstance(body, dict):
        if op.batch_member:
            found += batch_problems(body, op.batch_member)
        elif op.quantity is not None:
            found += request_problems(body)
    if found:
        raise MeteringError("ValidationFailed", f"{len(found)} problem(s) in the message body",
                            operation=op.name, problems=found)


def derive_client_token(msg: dict[str, Any], message_id: str | None, wire: dict[str, Any]) -> str:
    """A ClientToken that is the same every time the same message is delivered with the same request.

    The request is part of it: one message fanned out to two Meter Usage steps (other dimensions) carries
    the same id, and a token shared by different requests would be refused (IdempotencyConflictException).
    A redelivered or rebounded message has the same id and the same request, hence the same token.
    """
    request = json.dumps(wire, sort_keys=True, separators=(",", ":"))
    source = msg.get("id") or message_id
    return str(uuid.uuid5(TOKEN_NAMESPACE, f"{source}\n{request}" if source else request))


def _without_none(data: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in data.items() if value is not None}


def _record_body(result: RecordResult) -> dict[str, Any]:
    body: dict[str, Any] = {"RecordIndex": result.position, "UsageRecord": dict(result.record), "Status": result.status}
    if result.metering_record_id:
        body["MeteringRecordId"] = result.metering_record_id
    if result.error_code:
        body["ErrorCode"] = result.error_code
    if result.error_message:  # AWS's message, or a note of the connector's own (lib/batch.py _MAYBE_BILLED)
        body["ErrorMessage"] = result.error_message
    if result.billed_quantity is not None:
        body["BilledQuantity"] = result.billed_quantity
    if result.summed:
        body["SummedRecordIndexes"] = list(result.summed)
    return body


def batch_summary(op: Operation, outcome: BatchOutcome) -> dict[str, Any]:
    """The one result message of a batch: every record in input order plus counts per status."""
    counts = {status: 0 for status in KNOWN_STATUSES}
    for result in outcome.results:
        counts[result.status] = counts.get(result.status, 0) + 1
    summary = {
        "Results": [_record_body(r) for r in outcome.results],
        "StatusCounts": counts,
        "RecordCount": len(outcome.results),
        "AllSucceeded": all(r.status == "Success" for r in outcome.results),
        "RequestIds": outcome.request_ids,
    }
    epochs_to_iso(json_schema(op.out_schema), summary)
    return summary


# The platform refuses an outgoing message above ELASTICIO_OUTGOING_MESSAGE_SIZE_LIMIT bytes (10 MiB by
# default), measured after encryption (base64: 4/3 of the JSON) and with the message envelope (summary_budget).
DEFAULT_OUTGOING_LIMIT = 10 * 1024 * 1024


_HEADROOM = 16 * 1024  # the message's headers and the cipher's padding (at most 1/32 of the limit)


def summary_budget(passthrough: Any = None, needed: int | None = None) -> int:
    """Bytes of JSON one result message's body may hold, from the platform's outgoing size limit.

    The sailor checks the size of the message it publishes, encrypted and base64-encoded: 4/3 of the JSON of
    the body, the headers and, in a passthrough step, the incoming ``passthrough`` plus this step's own entry,
    a second copy of the body (elasticio_sailor/execution.py ``on_data``). A component cannot tell whether its
    step is a passthrough step, so the budget assumes it is: (3/4 of the limit, less the incoming passthrough
    and some headroom) / 2, about 3.7 MiB of body at the default 10 MiB. An incoming passthrough that nearly
    fills the limit by itself leaves no room for any output; the budget then stays at 1/16 of the limit.
    A body of ``needed`` bytes or fewer that fits within that 1/16 fits whatever the passthrough holds: the
    passthrough is then not measured (the usual message: no serialisation of it on the hot path).
    """
    raw = os.environ.get("ELASTICIO_OUTGOING_MESSAGE_SIZE_LIMIT", "")
    limit = int(raw) if raw.isdigit() and int(raw) > 0 else DEFAULT_OUTGOING_LIMIT
    floor = limit // 16
    if needed is not None and needed <= floor:
        return floor
    carried = jsontext.size(passthrough) if passthrough else 0
    return max(floor, (limit * 3 // 4 - carried - min(_HEADROOM, limit // 32)) // 2)


def summary_parts(summary: dict[str, Any], budget: int, size: int | None = None) -> list[dict[str, Any]]:
    """The summary as one message, or split into parts of at most ``budget`` bytes when it is larger.

    Records already billed must never turn into an error because their report is too big: each part
    carries a slice of ``Results`` (input order kept) with the whole message's counts, and ``Part`` /
    ``PartCount`` so the next step can tell the parts belong together.
    """
    if (jsontext.size(summary) if size is None else size) <= budget:  # ``size``: the summary's, when known
        return [summary]
    head = {key: value for key, value in summary.items() if key != "Results"}
    base = jsontext.size({**head, "Results": [], "Part": 10**6, "PartCount": 10**6})
    slices: list[list[dict[str, Any]]] = [[]]
    size = base
    for entry in summary["Results"]:
        entry_size = jsontext.size(entry) + 1
        if slices[-1] and size + entry_size > budget:
            slices.append([])
            size = base
        slices[-1].append(entry)
        size += entry_size
    return [{**head, "Results": part, "Part": index + 1, "PartCount": len(slices)}
            for index, part in enumerate(slices)]


def run(op: Operation, ctx: Any, msg: dict[str, Any], cfg: dict[str, Any], *,
        client: MeteringClient | None = None, now: Callable[[], float] = time.time) -> dict[str, Any] | None:
    """Execute ``op`` for one message: return the outgoing message, or raise.

    Retryable failures that outlive the in-process retries become ``elasticio_sailor.Rebound``.
    """
    from elasticio_sailor import Rebound

    logger = getattr(ctx, "logger", None) or log
    for target in (logger, log, logging.getLogger("lib.client"), logging.getLogger("lib.batch")):
        guard(target, secret_values(cfg))
    settings = settings_for(cfg)
    options = StepOptions.from_cfg(cfg)
    body = msg.get("body")
    member = op.idempotency_member
    if member and isinstance(body, dict) and body.get(member) == "":
        # the field says "leave empty": a mapped empty value is the same as none (a token is derived)
        body = {key: value for key, value in body.items() if key != member}
    validate_body(op, body)
    wire = timestamps_to_epoch(json_schema(op.in_schema), body)
    client = client or client_for(settings)
    try:
        if op.batch_member:
            return _run_batch(op, ctx, client, wire, options, now, logger, msg.get("passthrough"))
        return _run_single(op, ctx, client, wire, msg, logger)
    except MeteringError as err:
        logger.warning("%s failed: %s (retryable=%s)", op.name, err, err.retryable)
        if err.retryable:
            # were this the rebound past the limit, the sailor's error event carries these details: the
            # message never comes back then, and the ids of the records already billed must reach the flow
            billed = err.error_details["billedRecords"] if isinstance(err, BatchFailure) and err.billed else None
            raise Rebound(rebound_reason(op, err, logger),
                          details={"billedRecords": billed} if billed else None) from err
        raise


def _billed_entry(result: RecordResult) -> str:
    return f"#{result.position}={result.metering_record_id} ({result.status})"


def rebound_reason(op: Operation, err: MeteringError, logger: logging.Logger) -> str:
    """The reason of the rebound that follows the retryable failure ``err``.

    A batch that failed after some records were metered (:class:`BatchFailure`) is rebounded too: the
    redelivery sends those records again and AWS answers an identical record with the same id, so nothing is
    billed twice. The error event with ``billedRecords`` is not emitted then, so their ids are logged here
    first (position, MeteringRecordId, status; at warning level, every one of them) and the first few go into
    the reason as well. Should AWS's window or the month-end cut-off pass before the redelivery, those
    records come back ``TimestampOutOfBounds``: these log lines are then where their ids are.
    """
    text = str(err.cause) if isinstance(err, BatchFailure) else str(err)
    billed = err.billed if isinstance(err, BatchFailure) else []
    if not billed:
        return text
    for start in range(0, len(billed), BILLED_PER_LOG_LINE):
        part = billed[start:start + BILLED_PER_LOG_LINE]
        logger.warning("%s: %d record(s) were metered before the failure; the message is rebounded and the "
                       "redelivery re-sends them (AWS answers with the same ids). Metered (%d-%d of %d): %s",
                       op.name, len(billed), start + 1, start + len(part), len(billed),
                       ", ".join(_billed_entry(r) for r in part))
    named = ", ".join(_billed_entry(r) for r in billed[:REBOUND_REASON_IDS])
    more = f" and {len(billed) - REBOUND_REASON_IDS} more" if len(billed) > REBOUND_REASON_IDS else ""
    return (f"{text}; {len(billed)} record(s) had been metered before this failure: {named}{more} "
            f"(all are in the step's log; the redelivery re-sends them and AWS answers with the same ids)")


def _run_batch(op: Operation, ctx: Any, client: MeteringClient, wire: dict[str, Any], options: StepOptions,
               now: Callable[[], float], logger: logging.Logger, passthrough: Any = None) -> dict[str, Any] | None:
    """Batch Meter Usage: one summary (or its parts, or one message per record).

    ``now`` is the step's clock: the window is checked with it before the first call and again before each
    later one (a long message may outlive the month-end cut-off or a record's 24 h: lib/batch.py, step 7).
    """
    from elasticio_sailor import new_message

    outcome = run_batch(op, client, wire, now=now(), window_hours=options.window_hours,
                        out_of_window=options.out_of_window, same_hour=options.same_hour_records, clock=now)
    summary = batch_summary(op, outcome)
    if logger.isEnabledFor(logging.INFO):
        logger.info("%s: %d record(s) in %d call(s); %s", op.name, summary["RecordCount"], outcome.calls,
                    ", ".join(f"{k}={v}" for k, v in summary["StatusCounts"].items() if v))
    if options.emit_per_record:
        for result, record_body in zip(outcome.results, summary["Results"], strict=True):
            if result.request_id:
                record_body["RequestId"] = result.request_id
            ctx.emit("data", new_message(record_body))
        return None
    size = jsontext.size(summary)
    parts = summary_parts(summary, summary_budget(passthrough, needed=size), size)
    if len(parts) == 1:
        return new_message(summary)
    logger.info("%s: the result of %d record(s) is emitted in %d parts (outgoing size limit)", op.name,
                summary["RecordCount"], len(parts))
    for part in parts:
        ctx.emit("data", new_message(part))
    return None


def _run_single(op: Operation, ctx: Any, client: MeteringClient, wire: dict[str, Any], msg: dict[str, Any],
                logger: logging.Logger) -> dict[str, Any]:
    """The one-call operations: fill the ClientToken, send the decimal quantity, shape the answer."""
    from elasticio_sailor import new_message

    if op.quantity is not None:  # send the decimal quantity member (lib/quantity.py says why)
        wire = quantity.to_wire(wire, op.quantity)
    token_member = op.idempotency_member
    if token_member and not str(wire.get(token_member) or "").strip():
        # blank: as empty, which the wire copy leaves out (one blank token shared by every message would
        # collide), so the derived token is the same as for an empty mapping
        wire.pop(token_member, None)
        wire[token_member] = derive_client_token(msg, getattr(ctx, "message_id", None), wire)
    dry_run = bool(op.dry_run_member and wire.get(op.dry_run_member))
    try:
        reply = client.call(op, wire)
    except MeteringError as err:
        if dry_run and (err.kind == DRY_RUN or err.code in DRY_RUN_DENIED):
            logger.info("%s dry run: %s (request id %s)", op.name, err.code, err.request_id)
            permitted = err.kind == DRY_RUN
            # A refusal says why (a missing IAM permission, or credentials AWS does not take for this action:
            # long-term keys for Meter Usage): AWS's code and message (masked like every AWS text) go along.
            return (new_message(_without_none({
                "DryRun": True, "DryRunPermitted": permitted, "RequestId": err.request_id,
                "ErrorCode": None if permitted else err.code,
                "ErrorMessage": None if permitted else (err.aws_message or None)})))
        raise
    data = dict(reply.data)
    if token_member:
        data[token_member] = wire[token_member]
    if dry_run:
        data["DryRun"] = True
    data["RequestId"] = reply.request_id
    data = _without_none(data)
    epochs_to_iso(json_schema(op.out_schema), data)
    logger.info("%s succeeded after %d attempt(s) (request id %s)", op.name, reply.attempts, reply.request_id)
    return (new_message(data))
