"""The operation catalogue: the one place that says which Metering Service operations the emulator serves
and, for each, everything the rest of the emulator treats per operation.

Adding an operation takes three things:

1. its request and result shapes in ``model.py``'s ``SHAPES``, under the names botocore's model gives them
   (``spec/emulator/test_model_drift.py`` compares the names, the shapes and the modeled errors with the
   installed botocore model and fails until all three match);
2. its handler in ``operations.py``: ``(state, caller, body, entry) -> response body``, raising
   ``AwsError`` for a refusal, run under the state lock after every generic check has passed;
3. one ``Operation`` entry below.

Everything else reads the entry: the ``X-Amz-Target`` routing and dispatch, the shape check, the IAM
denial (``deniedOperations`` of fixture credentials and roles, and ``UnauthorizedException`` for a DryRun),
the per-account quota, the ``refuseLongTermKeys`` rule, the faults' operation lists (and which operations
an ``unprocessed`` fault applies to), ``disabledOperations``, the ``timestampWindowHours`` alias and the
per-operation statistics. Only a new timestamp window needs more: its ``Config`` field and admin name in
``state.py`` (and, if wanted, a CLI flag in ``cli.py``). The emulator's README lists the operations, their
quotas and windows for users; keep it in step.

STS (``sts.py``) is another service on the same port, spoken in AWS's Query protocol; its actions are not
in this table.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from . import operations
from .sigv4 import Credential

if TYPE_CHECKING:
    from .state import State

Handler = Callable[["State", Credential, dict[str, Any], "Operation"], dict[str, Any]]


class Operation(NamedTuple):
    """One operation of the Metering Service (API 2016-01-14) as the emulator serves it."""

    name: str  # botocore's operation name, the X-Amz-Target suffix
    handler: Handler
    input_shape: str  # the request shape's name in botocore's model (a key of model.SHAPES)
    output_shape: str  # the result shape's name, likewise
    errors: tuple[str, ...]  # the model's ``errors`` list of the operation, all of which the emulator produces
    iam_action: str  # named in AccessDeniedException when a credential's deniedOperations lists the operation
    # Calls per second per account and region (API reference, "Metering service quotas"); None: no quota.
    quota_per_second: int | None
    # The boolean member that asks for a dry run: a denied caller then gets UnauthorizedException.
    dry_run_member: str | None = None
    # The Config attribute (state.py) holding how many hours back a record's Timestamp is accepted.
    window: str | None = None
    # Whether a Timestamp exactly the window's age is still accepted (MeterUsage: "more than six hours after
    # events occur, the records won't be accepted") or not (BatchMeterUsage: "aren't accepted 24 hours or
    # more after an event"). The age is measured from now, not from the start of the hour.
    window_inclusive: bool = False
    # Records of the previous calendar month are refused once the month-end grace period has passed.
    month_end_cutoff: bool = False
    # The list member of the result holding records left unprocessed: an ``unprocessed`` fault applies.
    unprocessed_member: str | None = None
    # The platforms a first call may come from (a credential's ``platform``); None: any.
    platforms: tuple[str, ...] | None = None
    # The (error code, message) a long-term access key gets while refuseLongTermKeys is on; None: allowed.
    long_term_key_refusal: tuple[str, str] | None = None


# botocore 1.44.8's MeterUsage doc: the software must sign with the EC2 instance role, the EKS IRSA role or the
# ECS task role; long-term access keys are not supported. AWS does not document the error code for that.
_METER_USAGE_NEEDS_A_ROLE = (
    "AccessDeniedException",
    "MeterUsage must be signed with the workload's IAM role (EC2 instance role, EKS IRSA role or ECS task role); "
    "long-term access keys are not supported.")
# Its RegisterUsage doc: it can only be called from within an ECS task or an EKS pod (Fargate included); the
# modeled answer otherwise is PlatformNotSupportedException.
_REGISTER_USAGE_PLATFORMS = ("ecs", "eks", "fargate")
_REGISTER_USAGE_NEEDS_A_TASK = (
    "PlatformNotSupportedException",
    "RegisterUsage can only be called from within an ECS task or an EKS pod; long-term access keys are not "
    "supported.")

# Modeled errors that several operations share.
_EVERY = ("InternalServiceErrorException", "ThrottlingException")
_METERING = ("InvalidProductCodeException", "InvalidUsageDimensionException", "InvalidTagException",
             "InvalidUsageAllocationsException", "TimestampOutOfBoundsException")

OPERATIONS: dict[str, Operation] = {
    op.name: op
    for op in (
        Operation(
            name="BatchMeterUsage", handler=operations.batch_meter_usage,
            input_shape="BatchMeterUsageRequest", output_shape="BatchMeterUsageResult",
            errors=_EVERY + _METERING + ("InvalidCustomerIdentifierException", "InvalidLicenseException",
                                         "DisabledApiException"),
            iam_action="aws-marketplace:BatchMeterUsage", quota_per_second=10,
            window="batch_meter_usage_window_hours", month_end_cutoff=True, unprocessed_member="UnprocessedRecords",
        ),
        Operation(
            name="MeterUsage", handler=operations.meter_usage, input_shape="MeterUsageRequest",
            output_shape="MeterUsageResult", iam_action="aws-marketplace:MeterUsage", quota_per_second=10,
            errors=_EVERY + _METERING + ("InvalidEndpointRegionException", "DuplicateRequestException",
                                         "IdempotencyConflictException", "CustomerNotEntitledException"),
            dry_run_member="DryRun", window="meter_usage_window_hours", window_inclusive=True,
            long_term_key_refusal=_METER_USAGE_NEEDS_A_ROLE,
        ),
        Operation(
            name="RegisterUsage", handler=operations.register_usage,
            input_shape="RegisterUsageRequest", output_shape="RegisterUsageResult",
            errors=_EVERY + ("InvalidProductCodeException", "InvalidRegionException", "DisabledApiException",
                             "InvalidPublicKeyVersionException", "PlatformNotSupportedException",
                             "CustomerNotEntitledException"),
            iam_action="aws-marketplace:RegisterUsage", quota_per_second=5,
            platforms=_REGISTER_USAGE_PLATFORMS, long_term_key_refusal=_REGISTER_USAGE_NEEDS_A_TASK,
        ),
        Operation(
            name="ResolveCustomer", handler=operations.resolve_customer, input_shape="ResolveCustomerRequest",
            output_shape="ResolveCustomerResult", iam_action="aws-marketplace:ResolveCustomer", quota_per_second=None,
            errors=_EVERY + ("InvalidTokenException", "ExpiredTokenException", "DisabledApiException"),
        ),
    )
}

NAMES: tuple[str, ...] = tuple(OPERATIONS)
"""Every operation name, in the catalogue's (alphabetical) order: the default of lists of operations."""

WORKLOAD_ENDPOINTS: tuple[str, ...] = ("InstanceMetadata", "ContainerCredentials")
"""The workload-identity endpoints (workload.py), by the names faults use for them: the EC2 instance metadata
service (every ``/latest/`` request, the IMDSv2 token included) and the ECS container-credentials endpoint."""

WORKLOAD_FAULTS: tuple[str, ...] = ("throttle", "error500", "latency", "drop", "html503", "empty502")
"""The fault types a workload endpoint can have (the others name Metering Service behaviours)."""

UNPROCESSED: tuple[str, ...] = tuple(op.name for op in OPERATIONS.values() if op.unprocessed_member)
"""The operations an ``unprocessed`` fault applies to."""

WINDOWS: tuple[str, ...] = tuple(op.window for op in OPERATIONS.values() if op.window)
"""The Config attributes of every timestamp window (what the ``timestampWindowHours`` alias sets)."""
