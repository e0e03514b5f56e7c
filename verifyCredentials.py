"""verifyCredentials: tell bad credentials, a role that cannot be assumed, a container without workload
identity, a missing permission and a wrong region/endpoint apart.

Nothing is metered: the probe is ResolveCustomer with a token that cannot exist (AWS answers
InvalidTokenException only after authentication and authorisation passed). If ResolveCustomer is not
allowed (or the region does not offer it, lib/regions.py), an empty BatchMeterUsage, a DryRun
MeterUsage and a RegisterUsage for a product code that cannot exist (InvalidProductCodeException, or
another answer that only comes after authorisation) tell whether the credentials may meter. A probe answered
DisabledApiException or PlatformNotSupportedException cannot tell: the next one decides. In the role modes
the credentials are resolved first (STS, the workload's endpoints); a failure there is reported as such,
before any metering call.
"""

from __future__ import annotations

from typing import Any

from lib.client import MeteringClient, Settings
from lib.credentials import ACCESS_KEYS, ASSUME_ROLE, NO_WORKLOAD_IDENTITY, WORKLOAD
from lib.errors import CREDENTIALS, DRY_RUN, INPUT, PERMISSION, REGION, MeteringError, Problem
from lib.operations import OPERATIONS
from lib.redact import guard, secret_values
from lib.regions import operations_in
from lib.resilience import Backoff, Pacer
from lib.schema import load_ui_schema

PROBE_TOKEN = "elasticio-verify-credentials-probe-not-a-real-token"
PAYLOADS: dict[str, dict[str, Any]] = {
    "resolveCustomer": {"RegistrationToken": PROBE_TOKEN},
    "batchMeterUsage": {"UsageRecords": []},
    "meterUsage": {"ProductCode": "verifycredentialsprobe", "Timestamp": 0, "UsageDimension": "probe",
                   "DryRun": True, "ClientToken": "verify-credentials-probe"},
    "registerUsage": {"ProductCode": "verifycredentialsprobe", "PublicKeyVersion": 1},
}
# An answer of the RegisterUsage probe that AWS gives only to a caller it authorised: a customer without a
# subscription (the probe's product does not exist: normally InvalidProductCodeException, an input error).
# PlatformNotSupportedException proves nothing: it may come before the IAM check (the emulator answers it to
# long-term keys first), and such credentials can never register usage from here anyway.
_AUTHORISED = ("CustomerNotEntitledException",)
# Probe answers that say the probe cannot tell from here, not that the credentials are wrong: the next probe
# is tried. What follows the action's name in the reason when no probe shows a permission.
_CANNOT_TELL = {
    "DisabledApiException": "disabled in the region",
    "PlatformNotSupportedException": "AWS takes it only from ECS, EKS or Fargate tasks",
}


# STS's answers to AssumeRole signed with access keys it does not take (a wrong secret key, an unknown or
# expired key): bad credentials, not a trust policy that refuses the role (STS answers that AccessDenied).
_BAD_SOURCE_KEYS = frozenset({"SignatureDoesNotMatch", "InvalidClientTokenId", "IncompleteSignature", "ExpiredToken",
                              "MissingAuthenticationToken", "UnrecognizedClientException"})


def _who(settings: Settings) -> str:
    if settings.auth_mode == ASSUME_ROLE:
        return f"role {settings.role_arn}"
    if settings.auth_mode == WORKLOAD:
        return "workload identity of this container"
    return "access key"


def _region_or_credentials(err: MeteringError, settings: Settings) -> str:
    text = err.aws_message.lower()
    if "region" in text or ("scope" in text and "service" not in text):
        return (f"Wrong region: the endpoint rejected region {settings.region} ({err.code}). "
                "Choose the region of the endpoint, or fix the endpoint URL.")
    if "signature expired" in text or "not yet current" in text:
        return f"The clock of this machine is off by more than 5 minutes ({err.code})."
    if settings.auth_mode != ACCESS_KEYS:
        return (f"Bad credentials: AWS refused the temporary credentials of the {_who(settings)} even after "
                f"resolving them again ({err.code}: {err.aws_message}).")
    if err.code == "ExpiredTokenException":
        return "Bad credentials: the session token has expired."
    return (f"Bad credentials: AWS did not accept the access key, secret key or session token "
            f"({err.code}: {err.aws_message}).")


def _credential_source(err: MeteringError, settings: Settings) -> str | None:
    """Failures to obtain credentials at all (STS, the workload's endpoints), before any metering call."""
    if err.operation == "AssumeRole" and err.code in _BAD_SOURCE_KEYS and settings.role_source != WORKLOAD:
        return (f"Bad credentials: STS did not accept access key {settings.access_key_id}, the source of the "
                f"role ({err.code}: {err.aws_message}). Check the access key and the secret key.")
    if err.operation in ("AssumeRole", "AssumeRoleWithWebIdentity") and err.retryable:
        return f"Could not verify now: STS did not answer ({err.code}); try again later."
    if err.operation == "AssumeRole":
        source = ("the workload identity of this container" if settings.role_source == WORKLOAD
                  else f"access key {settings.access_key_id}")
        return (f"The role cannot be assumed: STS answered {err.code}: {err.aws_message}. Check that the trust "
                f"policy of {settings.role_arn} allows sts:AssumeRole for {source}, and that the External ID "
                f"matches its sts:ExternalId condition (or leave it empty if it has none).")
    if err.operation == "AssumeRoleWithWebIdentity":
        return (f"The workload's web identity cannot assume its role (AWS_ROLE_ARN): STS answered {err.code}: "
                f"{err.aws_message}. Check that the role's trust policy allows sts:AssumeRoleWithWebIdentity for "
                "the cluster's OIDC provider and this service account, and that the token file is current.")
    if err.code == NO_WORKLOAD_IDENTITY:
        return ("No workload identity in this container: found neither EKS IRSA (AWS_WEB_IDENTITY_TOKEN_FILE and "
                "AWS_ROLE_ARN), nor an ECS task role (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI / FULL_URI), nor an "
                "EC2 instance role (instance metadata). Run the step in a pod, task or instance with an IAM role, "
                "or choose Access keys or Assume role from access keys.")
    if err.operation == "credentials" and err.code == "ConnectionError":
        if "container credentials endpoint" in err.aws_message:
            return ("Could not reach the container credentials endpoint (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI / "
                    "FULL_URI) to read the workload identity; try again, or check the task's network.")
        where = settings.sts_endpoint_url or "AWS_ENDPOINT_URL_STS or the regional endpoint"
        return f"Could not reach STS ({where}); check the STS endpoint URL and the network."
    if err.operation == "credentials" and err.retryable:  # a busy metadata service, an unreadable STS answer
        return f"Could not verify now: {err.code}: {err.aws_message}; try again later."
    if err.operation == "credentials" and settings.auth_mode == ASSUME_ROLE and settings.role_source != WORKLOAD:
        return (f"The role could not be assumed with access key {settings.access_key_id}: {err.code}: "
                f"{err.aws_message}. Check the access keys, the Role ARN and the STS endpoint URL.")
    if err.operation == "credentials":
        return f"The workload identity could not be read: {err.code}: {err.aws_message}"
    return None


def _explain(err: MeteringError, settings: Settings) -> str:
    source = _credential_source(err, settings)
    if source is not None:
        return source
    if err.code == "RequestNotSent":
        return f"The credentials cannot be sent: {err.classification.hint} ({err.aws_message})."
    if err.kind == CREDENTIALS:
        return _region_or_credentials(err, settings)
    if err.kind == REGION or err.code in ("ConnectionError", "TLSError"):
        return (f"Wrong region or endpoint: {settings.endpoint_url} did not answer as the Metering Service in "
                f"{settings.region} ({err.code}{': ' + err.aws_message if err.aws_message else ''}).")
    if err.retryable:
        return f"Could not verify now, the service is unavailable ({err.code}); try again later."
    return f"Unexpected answer {err.code}: {err.aws_message}"


def _allowed(err: MeteringError) -> bool:
    """An error that can only come after authentication and authorisation passed."""
    if err.code == "ExpiredTokenException":
        return "security token" not in err.aws_message.lower()
    return err.kind in (INPUT, DRY_RUN) or err.code in _AUTHORISED


def _labelled(problem: Problem) -> str:
    """A configuration problem named by the field's label in the credentials form, then its name:
    ``Endpoint URL (endpointUrl): must be …`` (the form shows labels, the JSON paths are for mappings)."""
    name = problem.path.lstrip("/")
    title = load_ui_schema("config.json")["properties"].get(name, {}).get("title")
    return f"{title} ({name}): {problem.problem}" if title and "/" not in name else str(problem)


def check(credentials: dict[str, Any], client: MeteringClient | None = None) -> dict[str, Any]:
    """The verification result as a dict ``{"verified": bool, "reason"?: str}``.

    Probes, in order and only those the region offers (lib/regions.py): ResolveCustomer with a token that
    cannot exist, an empty BatchMeterUsage, a DryRun MeterUsage, a RegisterUsage for a product that cannot
    exist. None of them meters anything.
    """
    try:
        settings = Settings.from_cfg(credentials)
    except MeteringError as err:
        missing = all(problem.problem == "is required" for problem in err.problems)
        return {"verified": False, "reason": ("Incomplete" if missing else "Invalid") + " credentials: "
                + "; ".join(_labelled(problem) for problem in err.problems)}
    try:
        client = client or MeteringClient(settings, backoff=Backoff(max_attempts=3), timeout=(5.0, 15.0),
                                          pacer_for=lambda op: Pacer(op.rate_per_second))
    except MeteringError as err:  # the machine's settings (a certificate bundle that does not exist)
        return {"verified": False, "reason": str(err)}
    offered = [action for action in operations_in(settings.region) if action in PAYLOADS]
    denied: list[str] = []
    untold: list[str] = []  # probes that could not tell (_CANNOT_TELL), with why
    for index, action in enumerate(offered):
        op = OPERATIONS[action]
        try:
            client.call(op, PAYLOADS[action])
            passed = True
        except MeteringError as err:
            if err.code in _CANNOT_TELL:
                untold.append(f"{op.iam_action} ({_CANNOT_TELL[err.code]})")
                continue
            passed = _allowed(err)
            if not passed and err.kind != PERMISSION:
                return {"verified": False, "reason": _explain(err, settings)}
        if passed:
            if index == 0 and len(offered) == len(PAYLOADS):
                return {"verified": True}
            reason = f"Allowed to call {op.iam_action}"
            reason += f"; not allowed: {', '.join(denied)}" if denied else ""
            reason += f"; could not check {', '.join(untold)}." if untold else "."
            if len(offered) < len(PAYLOADS):
                reason += (f" Region {settings.region} offers only "
                           f"{', '.join(OPERATIONS[a].name for a in offered)}; probed with that.")
            return {"verified": True, "reason": reason}
        denied.append(op.iam_action)
    if not denied:  # every probe answered that it cannot tell
        return {"verified": False, "reason": f"Could not verify: {', '.join(untold)}."}
    reason = (f"Missing permission: the credentials ({_who(settings)}) are valid but the IAM policy allows "
              f"none of {', '.join(denied)}" + (f"; could not check {', '.join(untold)}." if untold else "."))
    if "aws-marketplace:MeterUsage" in denied and settings.auth_mode != WORKLOAD:
        reason += " Note: AWS accepts MeterUsage only signed by the workload's own role (Workload identity)."
    return {"verified": False, "reason": reason}


def verify(self: Any, credentials: dict[str, Any]) -> dict[str, Any]:
    """Entry point the sailor's service mode calls."""
    guard(getattr(self, "logger", None), secret_values(credentials))
    return check(credentials)
