"""Server-side AWS Signature Version 4 verification, written from AWS's description of the signing process
(IAM User Guide, "Create a signed AWS API request" and "Elements of an AWS API request signature") and
checked against requests botocore signs (``botocore/auth.py``, ``SigV4Auth``).

The checks run in a fixed order, the order of emulator/README.md ("What it checks, in order", step 5):
the Authorization header and its credential scope, the key, the signed headers, the signature, the session
token, then the clock skew. Each failure maps to the error code and message AWS's JSON services send.
Nothing here ever puts a secret or a signature into an error message.
"""

from __future__ import annotations

import calendar
import functools
import hashlib
import hmac
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import quote, unquote

from .errors import AwsError

SIGNING_NAME = "aws-marketplace"
ALGORITHM = "AWS4-HMAC-SHA256"
MAX_SKEW_SECONDS = 300

_AUTH_RE = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<akid>[^/,\s]+)/(?P<date>\d{8})/(?P<region>[^/,\s]+)/"
    r"(?P<service>[^/,\s]+)/aws4_request, ?SignedHeaders=(?P<signed>[a-z0-9;_.-]+), ?"
    r"Signature=(?P<signature>[0-9a-f]{64})"
)
_AMZ_DATE_RE = re.compile(r"^\d{8}T\d{6}Z$")


@dataclass(frozen=True)
class Credential:
    """A credential the emulator accepts; ``session_token`` set means temporary credentials."""

    access_key_id: str
    secret_access_key: str
    session_token: str | None = None
    account_id: str | None = None
    resource_region: str | None = None
    platform: str | None = None
    denied_operations: tuple[str, ...] = ()
    expired: bool = False
    # The workload a temporary credential stands for (its role ARN): AWS meters MeterUsage once per
    # dimension and hour *per instance, task or pod*, so every session of one workload is one caller.
    workload: str | None = None

    @property
    def caller_id(self) -> str:
        """Who a MeterUsage or RegisterUsage call comes from: the workload, or the access key."""
        return self.workload or self.access_key_id

    def __repr__(self) -> str:  # never show the secret or token
        return f"Credential(access_key_id={self.access_key_id!r}, account_id={self.account_id!r})"


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()


@functools.lru_cache(maxsize=256)
def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    """The HMAC chain ``AWS4+secret -> date -> region -> service -> aws4_request``."""
    key = ("AWS4" + secret).encode("utf-8")
    for part in (date, region, service, "aws4_request"):
        key = _hmac(key, part)
    return key


def _format_amz(epoch: float) -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(epoch))


def _parse_amz(value: str) -> float:
    try:
        return float(calendar.timegm(time.strptime(value, "%Y%m%dT%H%M%SZ")))
    except ValueError as exc:
        raise AwsError("IncompleteSignatureException",
                       f"Date must be in ISO-8601 'basic format'. Got '{value}'.") from exc


def _authorization(headers: Mapping[str, str], region: str, service: str) -> tuple[str, str, str, str, str]:
    """The Authorization header's key id, date, region, signed headers and signature, scope checked."""
    auth = headers.get("authorization")
    if not auth:
        raise AwsError("MissingAuthenticationTokenException", "Missing Authentication Token")
    m = _AUTH_RE.fullmatch(auth.strip())
    if m is None:
        raise AwsError(
            "IncompleteSignatureException",
            "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' parameters "
            f"in the form '{ALGORITHM} Credential=<key>/<date>/<region>/<service>/aws4_request, "
            "SignedHeaders=<names>, Signature=<64 hex digits>'.",
        )
    if m["service"] != service:
        raise AwsError("InvalidSignatureException",
                       f"Credential should be scoped to correct service: '{service}'.")
    if m["region"] != region:
        raise AwsError("InvalidSignatureException",
                       "Credential should be scoped to a valid region.")
    return m["akid"], m["date"], m["region"], m["signed"], m["signature"]


def _signed_headers(names: list[str], headers: Mapping[str, str], date: str) -> str:
    """Check the signed-header list against the request as AWS does; return the X-Amz-Date value."""
    if "host" not in names:
        raise AwsError("InvalidSignatureException",
                       "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.")
    amz_date = headers.get("x-amz-date")
    if amz_date is None:
        raise AwsError("IncompleteSignatureException",
                       "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.")
    if "x-amz-date" not in names:
        raise AwsError("InvalidSignatureException", "'X-Amz-Date' must be a 'SignedHeader' in the AWS Authorization.")
    missing = [n for n in names if n not in headers]
    if missing:
        raise AwsError("InvalidSignatureException",
                       f"Signed header(s) not present in the request: {', '.join(missing)}.")
    if "x-amz-security-token" in headers and "x-amz-security-token" not in names:
        raise AwsError("InvalidSignatureException",
                       "'X-Amz-Security-Token' must be a 'SignedHeader' in the AWS Authorization.")
    if not _AMZ_DATE_RE.match(amz_date.strip()) or amz_date.strip()[:8] != date:
        raise AwsError("InvalidSignatureException",
                       "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP.")
    return amz_date


def _uri_encode(text: str) -> str:
    """SigV4's URI encoding: every byte but the unreserved ``A-Z a-z 0-9 - _ . ~`` as ``%XX`` (upper case)."""
    return quote(text, safe="-_.~")


def canonical_uri(path: str) -> str:
    """The canonical URI of a request path as it came on the request line: dot segments removed, then
    URI-encoded once more (services other than S3 encode the already encoded path again), ``/`` kept."""
    segments: list[str] = []
    for segment in path.split("/")[1:]:
        if segment == "..":
            if segments:
                segments.pop()
        elif segment not in (".", ""):
            segments.append(segment)
    normal = "/" + "/".join(segments)
    if path.endswith("/") and normal != "/":
        normal += "/"
    return quote(normal, safe="/~")


def canonical_query(query: str) -> str:
    """The canonical query string of a raw query: each name and value decoded and URI-encoded again, pairs
    sorted by encoded name, then value, a name without ``=`` taking an empty value, joined by ``&``."""
    if not query:
        return ""
    pairs = []
    for item in query.split("&"):
        name, _, value = item.partition("=")
        pairs.append((_uri_encode(unquote(name)), _uri_encode(unquote(value))))
    return "&".join(f"{name}={value}" for name, value in sorted(pairs))


def verify(
    method: str,
    path: str,
    headers: Mapping[str, str],
    body: bytes,
    lookup: Callable[[str], Credential | None],
    region: str,
    now: float,
    service: str = SIGNING_NAME,
    query: str = "",
) -> Credential:
    """Verify a signed request and return its credential, or raise the AwsError AWS would send.

    ``path`` and ``query`` are the request target's path and raw query string (without ``?``) as they came;
    both are part of the canonical request, so a query added after signing does not verify.
    ``headers`` maps lower-case names to values (repeated headers already joined with ``,``).
    ``now`` is the emulator clock in epoch seconds.
    """
    akid, date, scope_region, signed, signature = _authorization(headers, region, service)
    credential = lookup(akid)
    if credential is None:
        raise AwsError("UnrecognizedClientException", "The security token included in the request is invalid.")
    names = signed.split(";")
    amz_date = _signed_headers(names, headers, date)
    scope_service = service
    canonical_headers = "".join(f"{n}:{' '.join(headers[n].split())}\n" for n in names)
    canonical_request = "\n".join(
        [method, canonical_uri(path), canonical_query(query), canonical_headers, signed,
         hashlib.sha256(body).hexdigest()]
    )
    scope = f"{date}/{scope_region}/{scope_service}/aws4_request"
    string_to_sign = "\n".join(
        [ALGORITHM, amz_date, scope, hashlib.sha256(canonical_request.encode("utf-8")).hexdigest()]
    )
    key = signing_key(credential.secret_access_key, date, scope_region, scope_service)
    expected = hmac.new(key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature):
        raise AwsError(
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided.",
        )
    token = headers.get("x-amz-security-token")
    expected_token = credential.session_token
    if (expected_token is not None or token is not None) and (
        token is None
        or expected_token is None
        or not hmac.compare_digest(token.encode("utf-8"), expected_token.encode("utf-8"))
    ):
        raise AwsError("UnrecognizedClientException", "The security token included in the request is invalid.")
    if credential.expired:
        raise AwsError("ExpiredTokenException", "The security token included in the request is expired")
    signed_at = _parse_amz(amz_date.strip())
    if signed_at < now - MAX_SKEW_SECONDS:
        raise AwsError(
            "InvalidSignatureException",
            f"Signature expired: {amz_date.strip()} is now earlier than {_format_amz(now - MAX_SKEW_SECONDS)} "
            f"({_format_amz(now)} - 5 min.)",
        )
    if signed_at > now + MAX_SKEW_SECONDS:
        raise AwsError(
            "InvalidSignatureException",
            f"Signature not yet current: {amz_date.strip()} is still later than "
            f"{_format_amz(now + MAX_SKEW_SECONDS)} ({_format_amz(now)} + 5 min.)",
        )
    return credential
