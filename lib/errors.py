"""One error type for the connector, classified by a table keyed on the AWS error code."""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import Any, NamedTuple


class Problem(NamedTuple):
    """One validation problem: a JSON-pointer-like path and what is wrong there."""

    path: str
    problem: str

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}"


class Kind(StrEnum):
    """What a failure means for the user; drives verifyCredentials and the error text.

    The values are the ``kind`` field of emitted errors (README "Errors and retries"): keep them stable.
    """

    CREDENTIALS = "credentials"
    PERMISSION = "permission"
    REGION = "region-or-endpoint"
    THROTTLED = "throttled"
    TRANSIENT = "transient"
    INPUT = "input"
    CONFLICT = "conflict"
    DRY_RUN = "dry-run"


CREDENTIALS, PERMISSION, REGION, THROTTLED, TRANSIENT, INPUT, CONFLICT, DRY_RUN = (
    Kind.CREDENTIALS, Kind.PERMISSION, Kind.REGION, Kind.THROTTLED, Kind.TRANSIENT, Kind.INPUT, Kind.CONFLICT,
    Kind.DRY_RUN)


class ErrorClass(NamedTuple):
    """How the connector treats one AWS error code."""

    retryable: bool
    kind: Kind
    hint: str


# Keyed on the AWS code as botocore parses it (prefix before '#' and suffix after ':' stripped).
ERROR_TABLE: dict[str, ErrorClass] = {
    # retried in-process, then rebound
    "ThrottlingException": ErrorClass(True, THROTTLED, "calls exceed the per-account quota; retried with backoff"),
    "InternalServiceErrorException": ErrorClass(True, TRANSIENT, "AWS-side error; retried with backoff"),
    "ServiceUnavailable": ErrorClass(True, TRANSIENT, "service unavailable; retried"),
    "RequestTimeout": ErrorClass(True, TRANSIENT, "request timed out; retried"),
    # botocore retries these as transient (botocore/retries/standard.py, TransientRetryableChecker)
    "RequestTimeoutException": ErrorClass(True, TRANSIENT, "request timed out; retried"),
    "PriorRequestNotComplete": ErrorClass(True, TRANSIENT, "an earlier request is still in progress; retried"),
    "ConnectionError": ErrorClass(True, TRANSIENT, "could not reach the endpoint (network, DNS or TLS)"),
    # modeled, fatal
    "DisabledApiException": ErrorClass(False, REGION, "the API is disabled in this region"),
    "InvalidProductCodeException": ErrorClass(False, INPUT, "the product code does not match a published product"),
    "InvalidUsageDimensionException": ErrorClass(False, INPUT, "the dimension is not defined on the product"),
    "InvalidTagException": ErrorClass(False, INPUT, "a tag is invalid or there are more than 5"),
    "InvalidUsageAllocationsException": ErrorClass(False, INPUT, "allocations do not add up or repeat a tag set"),
    "InvalidCustomerIdentifierException": ErrorClass(False, INPUT, "the customer identifier does not exist"),
    "InvalidLicenseException": ErrorClass(False, INPUT, "the license ARN is invalid, mismatched or inactive"),
    "TimestampOutOfBoundsException": ErrorClass(False, INPUT, "a timestamp is outside the accepted window"),
    "InvalidEndpointRegionException": ErrorClass(False, REGION, "call the endpoint of the region the workload runs in"),
    "InvalidRegionException": ErrorClass(False, REGION, "call the endpoint of the region the task runs in"),
    "DuplicateRequestException": ErrorClass(False, CONFLICT,
                                            "this hour and dimension were already metered with another quantity"),
    "IdempotencyConflictException": ErrorClass(False, CONFLICT,
                                               "the ClientToken was used before with other parameters"),
    "CustomerNotEntitledException": ErrorClass(False, PERMISSION, "the customer has no valid subscription"),
    # Not a modeled error shape: named in the model's RegisterUsage documentation (botocore 1.44.8), thrown
    # on the first RegisterUsage of a task or pod whose AWS account is not subscribed to the product.
    "CustomerNotSubscribedException": ErrorClass(False, PERMISSION, "the customer's AWS account running the "
                                                 "workload is not subscribed to the product (or the subscription "
                                                 "is not active)"),
    "InvalidPublicKeyVersionException": ErrorClass(False, INPUT, "unknown PublicKeyVersion"),
    "PlatformNotSupportedException": ErrorClass(False, PERMISSION,
                                                "only ECS, EKS and Fargate tasks may register usage"),
    "InvalidTokenException": ErrorClass(False, INPUT,
                                        "the registration token is invalid (form-decode it exactly once)"),
    "ExpiredTokenException": ErrorClass(False, INPUT, "the registration token has expired, or was submitted before"),
    # generic Coral / IAM errors, fatal
    "UnrecognizedClientException": ErrorClass(False, CREDENTIALS, "unknown access key or invalid session token"),
    "InvalidClientTokenId": ErrorClass(False, CREDENTIALS, "unknown access key"),
    "InvalidSignatureException": ErrorClass(False, CREDENTIALS, "the signature does not match (check the secret key)"),
    "IncompleteSignatureException": ErrorClass(False, CREDENTIALS, "the request signature is incomplete"),
    "MissingAuthenticationTokenException": ErrorClass(False, CREDENTIALS, "the request was not signed"),
    # AWS also answers AccessDeniedException to Meter Usage signed with long-term access keys (its message says
    # so): the hint must not send the user to the IAM policy alone.
    "AccessDeniedException": ErrorClass(False, PERMISSION, "the IAM policy does not allow this action, or AWS "
                                        "does not take these credentials for it: Meter Usage and Register Usage "
                                        "need the workload's own IAM role, not access keys"),
    "UnauthorizedException": ErrorClass(False, PERMISSION, "the IAM policy does not allow this action"),
    "DryRunOperation": ErrorClass(False, DRY_RUN, "dry run: the call would have been permitted"),
    "ValidationException": ErrorClass(False, INPUT, "AWS rejected the request parameters"),
    "SerializationException": ErrorClass(False, INPUT, "AWS could not read the request body"),
    "UnknownOperationException": ErrorClass(False, REGION, "the endpoint does not serve the metering API"),
    "ValidationFailed": ErrorClass(False, INPUT, "fix the mapping of the fields named"),
}


def parse_code(raw: str) -> str:
    """Normalise an AWS error type as botocore does: drop ``namespace#`` and ``:suffix``."""
    return raw.split(":", 1)[0].rsplit("#", 1)[-1].strip()


CONFIGURATION_INVALID = ErrorClass(False, INPUT, "fix the credential fields named")


def classify(code: str, status: int | None) -> ErrorClass:
    """Look ``code`` up; unknown codes are retryable only for 5xx and 429 responses (429, "too many
    requests", counts as throttling: it also slows the adaptive pace, lib/resilience.py)."""
    known = ERROR_TABLE.get(code)
    if known is not None:
        return known
    if status == 429:
        return ErrorClass(True, THROTTLED, "too many requests (HTTP 429); retried with backoff")
    if status is not None and status >= 500:
        return ErrorClass(True, TRANSIENT, "server error; retried")
    if status in (403, 404, 405):
        return ErrorClass(False, REGION, "the endpoint did not answer as the metering API")
    return ErrorClass(False, INPUT, "unexpected error")


# What an answer means when an earlier attempt of the same call may have been processed by AWS.
_AFTER_UNANSWERED = {
    ("ResolveCustomer", "ExpiredTokenException"):
        "AWS answers a registration token submitted again as expired (model: \"the buyer has resubmitted the "
        "registration token\"), so the token was most likely resolved by that attempt and its answer lost; the "
        "buyer gets a new token by opening the product's setup page from AWS Marketplace again",
}


class MeteringError(Exception):
    """Every failure of the connector: AWS errors, transport errors and input validation errors.

    The sailor puts ``name`` in the error message and appends :attr:`error_details`.
    """

    def __init__(self, code: str, message: str, *, operation: str, status: int | None = None,
                 request_id: str | None = None, problems: Sequence[Any] = (),
                 classification: ErrorClass | None = None) -> None:
        self.code = code
        self.aws_message = message
        self.operation = operation
        self.status = status
        self.request_id = request_id
        self.problems = list(problems)
        if classification is None and code == "ValidationFailed" and operation == "configuration":
            classification = CONFIGURATION_INVALID  # the step's credentials, not a message's mapping
        self.classification = classification or classify(code, status)
        self.name = code
        self.unanswered: list[int] = []  # earlier attempts of the call whose answer never arrived
        self.maybe_sent = True  # a transport failure after which AWS may have the request (not: while connecting)
        self.signed_with: str | None = None  # the access key of a request AWS refused (lib/client.py _send)
        super().__init__(self._text())

    def after_unanswered(self, attempts: list[int]) -> MeteringError:
        """This error ended a call whose earlier ``attempts`` got no answer (the connection failed after the
        request may have been sent): AWS may have processed one of them, which explains some answers (a
        registration token already resolved is answered ExpiredTokenException). Said in the text and details."""
        self.unanswered = list(attempts)
        self.args = (self._text(),)
        return self

    @property
    def retryable(self) -> bool:
        """Whether retrying later may succeed (throttling, AWS-side and network errors)."""
        return self.classification.retryable

    @property
    def kind(self) -> str:
        """The class of problem, one of the constants of this module."""
        return self.classification.kind

    def _text(self) -> str:
        text = f"{self.operation}: {self.code}"
        if self.aws_message:
            text += f": {self.aws_message}"
        if self.problems:
            text += " — " + "; ".join(str(p) for p in self.problems)
        if self.classification.hint and self.classification.hint.lower() not in text.lower():
            text += f" ({self.classification.hint})"
        if self.unanswered:
            which = ", ".join(map(str, self.unanswered))
            several = len(self.unanswered) > 1
            text += (f"; attempt{'s' if several else ''} {which} of this call got no answer (connection lost), "
                     f"so AWS may have processed {'one of them' if several else 'it'}")
            consequence = _AFTER_UNANSWERED.get((self.operation, self.code))
            if consequence:
                text += f": {consequence}"
        if self.request_id:
            text += f" [request id {self.request_id}]"
        return text

    @property
    def error_details(self) -> dict[str, Any]:
        """JSON-serialisable fields the sailor adds to the emitted error."""
        details: dict[str, Any] = {
            "code": self.code,
            "awsMessage": self.aws_message,
            "operation": self.operation,
            "statusCode": self.status,
            "requestId": self.request_id,
            "retryable": self.retryable,
            "kind": self.kind,
        }
        if self.problems:
            details["problems"] = [{"path": p.path, "problem": p.problem} for p in self.problems]
        if self.unanswered:
            details["unansweredAttempts"] = list(self.unanswered)
        return details
