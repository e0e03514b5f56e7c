"""verifyCredentials: tell bad credentials, a missing permission and a wrong region/endpoint apart.

Nothing is metered: the probe is ResolveCustomer with a token that cannot exist (AWS answers
InvalidTokenException only after authentication and authorisation passed). If ResolveCustomer is not
allowed, an empty BatchMeterUsage and a DryRun MeterUsage tell whether the credentials may meter.
"""

from __future__ import annotations

from typing import Any

from lib.client import MeteringClient, Settings
from lib.errors import CREDENTIALS, DRY_RUN, INPUT, PERMISSION, MeteringError
from lib.operations import OPERATIONS
from lib.redact import guard, secret_values
from lib.resilience import Backoff, Pacer

PROBE_TOKEN = "elasticio-verify-credentials-probe-not-a-real-token"
PROBES: tuple[tuple[str, dict[str, Any]], ...] = (
    ("batchMeterUsage", {"UsageRecords": []}),
    ("meterUsage", {"ProductCode": "verifycredentialsprobe", "Timestamp": 0, "UsageDimension": "probe",
                    "DryRun": True, "ClientToken": "verify-credentials-probe"}),
)


def _region_or_credentials(err: MeteringError, settings: Settings) -> str:
    text = err.aws_message.lower()
    if "region" in text or ("scope" in text and "service" not in text):
        return (f"Wrong region: the endpoint rejected region {settings.region} ({err.code}). "
                "Choose the region of the endpoint, or fix the endpoint URL.")
    if "signature expired" in text or "not yet current" in text:
        return f"The clock of this machine is off by more than 5 minutes ({err.code})."
    if err.code == "ExpiredTokenException":
        return "Bad credentials: the session token has expired."
    return (f"Bad credentials: AWS did not accept the access key, secret key or session token "
            f"({err.code}: {err.aws_message}).")


def _explain(err: MeteringError, settings: Settings) -> str:
    if err.kind == CREDENTIALS:
        return _region_or_credentials(err, settings)
    if err.kind in ("region-or-endpoint",) or err.code in ("ConnectionError", "TLSError"):
        return (f"Wrong region or endpoint: {settings.endpoint_url} did not answer as the Metering Service in "
                f"{settings.region} ({err.code}{': ' + err.aws_message if err.aws_message else ''}).")
    if err.retryable:
        return f"Could not verify now, the service is unavailable ({err.code}); try again later."
    return f"Unexpected answer {err.code}: {err.aws_message}"


def _allowed(err: MeteringError) -> bool:
    """An error that can only come after authentication and authorisation passed."""
    if err.code == "ExpiredTokenException":
        return "security token" not in err.aws_message.lower()
    return err.kind in (INPUT, DRY_RUN)


def check(credentials: dict[str, Any], client: MeteringClient | None = None) -> dict[str, Any]:
    """The verification result as a dict ``{"verified": bool, "reason"?: str}``."""
    try:
        settings = Settings.from_cfg(credentials)
    except MeteringError as err:
        return {"verified": False, "reason": "Incomplete credentials: " + "; ".join(map(str, err.problems))}
    client = client or MeteringClient(settings, backoff=Backoff(max_attempts=3), timeout=(5.0, 15.0),
                                      pacer_for=lambda op: Pacer(op.rate_per_second))
    try:
        client.call(OPERATIONS["resolveCustomer"], {"RegistrationToken": PROBE_TOKEN})
        return {"verified": True}
    except MeteringError as err:
        if _allowed(err):
            return {"verified": True}
        if err.kind != PERMISSION:
            return {"verified": False, "reason": _explain(err, settings)}
        denied = [OPERATIONS["resolveCustomer"].iam_action]
    for action, payload in PROBES:
        op = OPERATIONS[action]
        try:
            client.call(op, payload)
            return {"verified": True, "reason": f"Allowed to call {op.iam_action}; not allowed: {', '.join(denied)}."}
        except MeteringError as err:
            if _allowed(err):
                return {"verified": True,
                        "reason": f"Allowed to call {op.iam_action}; not allowed: {', '.join(denied)}."}
            if err.kind != PERMISSION:
                return {"verified": False, "reason": _explain(err, settings)}
            denied.append(op.iam_action)
    return {"verified": False,
            "reason": "Missing permission: the credentials are valid but the IAM policy allows none of "
                      + ", ".join(denied) + "."}


def verify(self: Any, credentials: dict[str, Any]) -> dict[str, Any]:
    """Entry point the sailor's service mode calls."""
    guard(getattr(self, "logger", None), secret_values(credentials))
    return check(credentials)
