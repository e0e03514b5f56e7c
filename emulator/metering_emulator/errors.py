"""The AWS JSON 1.1 error model of the emulator: one exception type, statuses from one table."""

from __future__ import annotations

# HTTP status per error type; everything not listed is answered with 400. Smithy's ``@error`` trait
# (smithy.io, "Type refinement traits") makes a "client" error 400 and a "server" error 500 unless an
# ``@httpError`` trait says otherwise. In the service's Smithy model (aws-sdk-js-v3,
# ``codegen/sdk-codegen/aws-models/marketplace-metering.json``) InternalServiceErrorException is the only
# "server" error (botocore's model: ``"fault": true``) and IdempotencyConflictException the only one with an
# ``@httpError`` (409). MissingAuthenticationToken is 403 on AWS's "Common Errors" pages, and DryRunOperation
# is 412 as EC2 answers a dry run (EC2 API reference, "Common client error codes"). docs/metering-api.md,
# "Errors", has the table.
STATUS_BY_TYPE: dict[str, int] = {
    "InternalServiceErrorException": 500,
    "IdempotencyConflictException": 409,
    "MissingAuthenticationTokenException": 403,
    "DryRunOperation": 412,
    "UnknownOperationException": 400,
}


class AwsError(Exception):
    """An error reply: ``{"__type": type, "message": message}`` at ``status``."""

    def __init__(self, error_type: str, message: str, status: int | None = None) -> None:
        super().__init__(f"{error_type}: {message}")
        self.error_type = error_type
        self.message = message
        self.status = status if status is not None else STATUS_BY_TYPE.get(error_type, 400)

    def body(self) -> dict[str, str]:
        """The JSON body (bare ``__type``, lowercase ``message`` as the modeled shapes use)."""
        return {"__type": self.error_type, "message": self.message}


def serialization_error(message: str) -> AwsError:
    """Malformed JSON or a member of the wrong JSON type."""
    return AwsError("SerializationException", message)
