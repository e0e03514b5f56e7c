"""The operations table: the one place that says what each action calls and how.

Adding an operation takes: one entry here; its two schemas in schemas/ (``<action>.in.json`` and
``<action>.out.json``, the single source of validation and of the mapping UI); an ``actions/<action>.py``
that binds :func:`lib.runner.run` to the entry (three lines, as the others); and its component.json
entry. The runner and the client read everything else from the entry, and
spec/connector/test_botocore_model.py checks the schemas against botocore's model.
"""

from __future__ import annotations

from typing import NamedTuple

from .quantity import RECORD, REQUEST, Members


class Operation(NamedTuple):
    """One Metering Service operation as the connector exposes it."""

    action: str  # component.json key
    name: str  # AWS operation name (X-Amz-Target suffix)
    title: str
    iam_action: str
    rate_per_second: float  # documented quota per account and region
    in_schema: str
    out_schema: str
    # Members the connector fills itself when absent (AWS name → source).
    idempotency_member: str | None = None
    # A list member the connector splits into several calls (chunked batch).
    batch_member: str | None = None
    batch_max_items: int = 0
    batch_max_bytes: int = 0
    dry_run_member: str | None = None
    # The quantity members of the request (or of each batch record): validated, then sent as decimals.
    quantity: Members | None = None


OPERATIONS: dict[str, Operation] = {
    op.action: op
    for op in (
        Operation(
            action="batchMeterUsage", name="BatchMeterUsage", title="Batch Meter Usage",
            iam_action="aws-marketplace:BatchMeterUsage", rate_per_second=10,
            in_schema="batchMeterUsage.in.json", out_schema="batchMeterUsage.out.json",
            batch_member="UsageRecords", batch_max_items=25, batch_max_bytes=1_000_000, quantity=RECORD,
        ),
        Operation(
            action="meterUsage", name="MeterUsage", title="Meter Usage",
            iam_action="aws-marketplace:MeterUsage", rate_per_second=10,
            in_schema="meterUsage.in.json", out_schema="meterUsage.out.json",
            idempotency_member="ClientToken", dry_run_member="DryRun", quantity=REQUEST,
        ),
        Operation(
            action="registerUsage", name="RegisterUsage", title="Register Usage",
            iam_action="aws-marketplace:RegisterUsage", rate_per_second=5,
            in_schema="registerUsage.in.json", out_schema="registerUsage.out.json",
        ),
        Operation(
            action="resolveCustomer", name="ResolveCustomer", title="Resolve Customer",
            # No documented quota; pace like the others so a burst cannot throttle the account.
            iam_action="aws-marketplace:ResolveCustomer", rate_per_second=10,
            in_schema="resolveCustomer.in.json", out_schema="resolveCustomer.out.json",
        ),
    )
}

BY_NAME: dict[str, Operation] = {op.name: op for op in OPERATIONS.values()}
