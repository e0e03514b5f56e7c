"""STS for the emulator: roles with trust rules, ``AssumeRole`` / ``AssumeRoleWithWebIdentity`` over the
AWS Query protocol, and the temporary credentials they issue (accepted by the metering endpoint until
they expire).

Wire format as botocore 1.44.8's ``sts`` model and its query parser read it (``botocore/data/sts/
2011-06-15/service-2.json``; ``botocore/parsers.py`` ``QueryParser``): a form-encoded ``POST /`` with
``Action`` and ``Version=2011-06-15``; the answer is ``<{Action}Response><{Action}Result>…`` XML, errors are
``<ErrorResponse><Error><Type/><Code/><Message/></Error><RequestId/></ErrorResponse>``. The error codes
are STS's own (``AccessDenied``, ``ValidationError``, ``InvalidIdentityToken``, ``ExpiredTokenException``,
``InvalidClientTokenId``, ``SignatureDoesNotMatch``, ...), see the STS API reference "Common Errors".

Nothing here puts a secret (secret key, session token, web-identity token, External ID) in a message.
"""

from __future__ import annotations

import dataclasses
import re
import secrets
import string
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

from . import sigv4
from .catalogue import NAMES
from .errors import AwsError
from .parsing import items, parsed
from .parsing import string as string_field
from .sigv4 import Credential

if TYPE_CHECKING:
    from .catalogue import Operation
    from .state import State

STS_NAMESPACE = "https://sts.amazonaws.com/doc/2011-06-15/"
STS_VERSION = "2011-06-15"
FORM_TYPE = "application/x-www-form-urlencoded"
IDENTITY_KEYS = ("roles", "webIdentityTokens", "instanceProfile", "containerCredentials")
PLATFORMS = ("ecs", "eks", "fargate", "ec2", "other")
_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::(\d{12}):role/(?:[\w+=,.@-]+/)*([\w+=,.@-]{1,64})$")
_SESSION_NAME = re.compile(r"^[\w+=,.@-]{2,64}$")
_EXTERNAL_ID = re.compile(r"^[\w+=,.@:/-]{2,1224}$")
_UPPER = string.ascii_uppercase + string.digits

# The metering endpoint's authentication errors as STS spells them (STS API reference, Common Errors).
_STS_AUTH_CODES = {
    "UnrecognizedClientException": ("InvalidClientTokenId", 403),
    "InvalidSignatureException": ("SignatureDoesNotMatch", 403),
    "IncompleteSignatureException": ("IncompleteSignature", 400),
    "MissingAuthenticationTokenException": ("MissingAuthenticationToken", 403),
    "ExpiredTokenException": ("ExpiredToken", 400),
}


class StsError(AwsError):
    """An STS error (XML); ``sender`` false means ``<Type>Receiver</Type>`` (a server fault)."""

    def __init__(self, code: str, message: str, status: int = 400, sender: bool = True) -> None:
        super().__init__(code, message, status)
        self.sender = sender


# -- fixtures -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class WebIdentity:
    """A trusted OIDC identity: issuer URL and subject (``*`` = any subject of that issuer)."""

    issuer: str
    subject: str


@dataclass(frozen=True)
class Role:
    """An IAM role the emulator's STS may hand out sessions for."""

    arn: str
    account_id: str
    name: str
    external_id: str | None = None
    trusted_access_keys: tuple[str, ...] = ()
    trusted_accounts: tuple[str, ...] = ()
    trusted_web_identities: tuple[WebIdentity, ...] = ()
    max_session_duration: float = 3600.0
    platform: str | None = None
    resource_region: str | None = None
    denied_operations: tuple[str, ...] = ()

    def __repr__(self) -> str:  # the External ID is a secret of the customer
        return f"Role(arn={self.arn!r})"


@dataclass(frozen=True)
class WebToken:
    """A web-identity token (as a projected service-account token file would hold) and whom it names."""

    token: str
    issuer: str
    subject: str
    audience: str = "sts.amazonaws.com"
    expires_at: float | None = None

    def __repr__(self) -> str:
        return f"WebToken(issuer={self.issuer!r}, subject={self.subject!r})"


@dataclass(frozen=True)
class Identity:
    """The identity part of the fixtures: roles, web-identity tokens, the instance and container roles."""

    roles: dict[str, Role] = field(default_factory=dict)
    web_tokens: dict[str, WebToken] = field(default_factory=dict)
    instance_role: str | None = None
    container_role: str | None = None
    container_authorization: str | None = None


def _strings(value: Any, where: str, errors: list[str]) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        errors.append(f"{where}: must be an array of non-empty strings")
        return ()
    return tuple(value)


def _role(obj: dict[str, Any], where: str, errors: list[str]) -> Role | None:
    arn = obj.get("roleArn")
    match = _ROLE_ARN.match(arn) if isinstance(arn, str) else None
    if match is None:
        errors.append(f"{where}.roleArn: must be an IAM role ARN arn:aws:iam::<12 digits>:role/<name>")
        return None
    trust = obj.get("trust", {})
    if not isinstance(trust, dict):
        errors.append(f"{where}.trust: must be an object")
        trust = {}
    unknown = set(trust) - {"accessKeys", "accounts", "webIdentity"}
    if unknown:
        errors.append(f"{where}.trust: unknown keys {sorted(unknown)}")
    web: list[WebIdentity] = []
    for path, item in items(trust, "webIdentity", errors, f"{where}.trust"):
        if not isinstance(item, dict) or not all(isinstance(item.get(k), str) and item.get(k)
                                                 for k in ("issuer", "subject")):
            errors.append(f"{path}: needs issuer and subject strings")
            continue
        web.append(WebIdentity(item["issuer"], item["subject"]))
    external_id = string_field(obj, "externalId", where, errors, required=False)
    platform = string_field(obj, "platform", where, errors, required=False)
    if platform is not None and platform not in PLATFORMS:
        errors.append(f"{where}.platform: must be one of {list(PLATFORMS)}")
    duration = obj.get("maxSessionDurationSeconds", 3600)
    if isinstance(duration, bool) or not isinstance(duration, (int, float)) or not 1 <= duration <= 43200:
        errors.append(f"{where}.maxSessionDurationSeconds: must be a number of seconds from 1 to 43200")
        duration = 3600
    denied = _strings(obj.get("deniedOperations"), f"{where}.deniedOperations", errors)
    if any(d not in NAMES for d in denied):
        errors.append(f"{where}.deniedOperations: must be drawn from {list(NAMES)}")
    return Role(str(arn), match.group(1), match.group(2), external_id,
                _strings(trust.get("accessKeys"), f"{where}.trust.accessKeys", errors),
                _strings(trust.get("accounts"), f"{where}.trust.accounts", errors), tuple(web), float(duration),
                platform, string_field(obj, "resourceRegion", where, errors, required=False), denied)


def parse_identity(doc: dict[str, Any], errors: list[str]) -> Identity:
    """Parse the identity keys of a fixtures document (problems are appended to ``errors``)."""
    roles = {role.arn: role for role in parsed(doc, "roles", errors, _role)}
    tokens: dict[str, WebToken] = {}
    for where, obj in items(doc, "webIdentityTokens", errors):
        if not isinstance(obj, dict) or not all(isinstance(obj.get(k), str) and obj.get(k)
                                                for k in ("token", "issuer", "subject")):
            errors.append(f"{where}: needs token, issuer and subject strings")
            continue
        expires = obj.get("expiresAt")
        if expires is not None and (isinstance(expires, bool) or not isinstance(expires, (int, float))):
            errors.append(f"{where}.expiresAt: must be epoch seconds")
            expires = None
        tokens[obj["token"]] = WebToken(obj["token"], obj["issuer"], obj["subject"],
                                        str(obj.get("audience") or "sts.amazonaws.com"), expires)
    found: dict[str, str | None] = {}
    for key in ("instanceProfile", "containerCredentials"):
        obj = doc.get(key)
        found[key] = None
        if obj is None:
            continue
        if not isinstance(obj, dict) or obj.get("roleArn") not in roles:
            errors.append(f"{key}.roleArn: must name a role declared in roles")
            continue
        found[key] = obj["roleArn"]
    container = doc.get("containerCredentials")
    authorization = string_field(container, "authorizationToken", "containerCredentials", errors, required=False) \
        if isinstance(container, dict) else None
    return Identity(roles, tokens, found["instanceProfile"], found["containerCredentials"], authorization)


def redact(doc: dict[str, Any]) -> None:
    """Mask the identity secrets of a fixtures document in place (for ``GET fixtures``)."""
    for role in doc.get("roles", []) if isinstance(doc.get("roles"), list) else []:
        if isinstance(role, dict) and "externalId" in role:
            role["externalId"] = "***"
    for token in doc.get("webIdentityTokens", []) if isinstance(doc.get("webIdentityTokens"), list) else []:
        if isinstance(token, dict) and "token" in token:
            token["token"] = "***"
    container = doc.get("containerCredentials")
    if isinstance(container, dict) and "authorizationToken" in container:
        container["authorizationToken"] = "***"


# -- sessions -------------------------------------------------------------------------------------

@dataclass
class Session:
    """Temporary credentials issued by STS (or by the instance / container endpoints) for one role."""

    credential: Credential
    role_arn: str
    session_name: str
    source: str  # AssumeRole | AssumeRoleWithWebIdentity | InstanceMetadata | ContainerCredentials
    issued_at: float
    expires_at: float
    revoked: bool = False

    def as_json(self, now: float) -> dict[str, Any]:
        """The admin API form (no secret key, no session token)."""
        return {"accessKeyId": self.credential.access_key_id, "roleArn": self.role_arn,
                "sessionName": self.session_name, "source": self.source, "issuedAt": self.issued_at,
                "expiresAt": self.expires_at, "expired": now >= self.expires_at, "revoked": self.revoked}


class Sessions:
    """Every session issued since the last reset, keyed by access key id."""

    def __init__(self) -> None:
        self.by_key: dict[str, Session] = {}
        self.imds_tokens: dict[str, float] = {}
        self.counts: dict[str, int] = {}

    def issue(self, role: Role, session_name: str, source: str, now: float, duration: float) -> Session:
        """New temporary credentials for ``role`` valid for ``duration`` seconds from ``now``."""
        akid = "ASIA" + "".join(secrets.choice(_UPPER) for _ in range(16))
        secret = secrets.token_urlsafe(30)[:40]
        token = "EMU/" + secrets.token_urlsafe(96)
        credential = Credential(akid, secret, token, role.account_id, role.resource_region, role.platform,
                                role.denied_operations, workload=role.arn)
        session = Session(credential, role.arn, session_name, source, now, now + duration)
        self.by_key[akid] = session
        self.counts[source] = self.counts.get(source, 0) + 1
        return session

    def lookup(self, akid: str, now: float) -> Credential | None:
        """The credential of a live or expired session (expired ones are flagged); None if revoked."""
        session = self.by_key.get(akid)
        if session is None or session.revoked:
            return None
        if now >= session.expires_at:
            return dataclasses.replace(session.credential, expired=True)
        return session.credential


def sessions_of(state: State) -> Sessions:
    """The session store of ``state`` (created on first use, dropped by reset and fixture loads)."""
    store = getattr(state, "sts_sessions", None)
    if not isinstance(store, Sessions):
        store = Sessions()
        state.sts_sessions = store
    return store


def identity_of(state: State) -> Identity:
    """The identity fixtures of ``state``."""
    identity = getattr(state.fixtures, "identity", None)
    return identity if isinstance(identity, Identity) else Identity()


def credential_lookup(state: State) -> Callable[[str], Credential | None]:
    """The SigV4 lookup: fixture credentials first, then the sessions STS issued (call under the lock)."""
    fixed = state.fixtures.credentials
    store = sessions_of(state)
    now = state.now()

    def lookup(akid: str) -> Credential | None:
        return fixed.get(akid) or store.lookup(akid, now)

    return lookup


def refuse_long_term_keys(state: State, op: Operation, caller: Credential) -> None:
    """With ``refuseLongTermKeys`` on, the operations whose catalogue entry has a ``long_term_key_refusal``
    (MeterUsage and RegisterUsage, after their botocore 1.44.8 documentation) need temporary (role)
    credentials; a long-term key gets that refusal.
    """
    if op.long_term_key_refusal is None or caller.session_token is not None:
        return
    with state.lock:
        refuse = bool(getattr(state.config, "refuse_long_term_keys", False))
    if refuse:
        raise AwsError(*op.long_term_key_refusal)


# -- the Query protocol -------------------------------------------------------------------------

def is_sts_request(method: str, path: str, headers: dict[str, str]) -> bool:
    """A form-encoded ``POST /`` without an ``X-Amz-Target`` (the metering API uses JSON 1.1 targets)."""
    media = headers.get("content-type", "").split(";")[0].strip().lower()
    return method == "POST" and path == "/" and media == FORM_TYPE and "x-amz-target" not in headers


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def _xml(tag: str, value: Any) -> str:
    return f"<{tag}>{escape(str(value))}</{tag}>"


def error_xml(err: AwsError, request_id: str) -> bytes:
    """``ErrorResponse`` as STS sends it."""
    kind = "Sender" if getattr(err, "sender", True) else "Receiver"
    return (f'<ErrorResponse xmlns="{STS_NAMESPACE}"><Error><Type>{kind}</Type>{_xml("Code", err.error_type)}'
            f'{_xml("Message", err.message)}</Error>{_xml("RequestId", request_id)}</ErrorResponse>').encode()


def _result_xml(action: str, inner: str, request_id: str) -> bytes:
    return (f'<{action}Response xmlns="{STS_NAMESPACE}"><{action}Result>{inner}</{action}Result>'
            f'<ResponseMetadata>{_xml("RequestId", request_id)}</ResponseMetadata></{action}Response>').encode()


def _session_xml(session: Session, role: Role) -> str:
    cred = session.credential
    assumed = f"arn:aws:sts::{role.account_id}:assumed-role/{role.name}/{session.session_name}"
    role_id = "AROA" + format(abs(hash(role.arn)) % 16**16, "016X")
    return (f'<Credentials>{_xml("AccessKeyId", cred.access_key_id)}{_xml("SecretAccessKey", cred.secret_access_key)}'
            f'{_xml("SessionToken", cred.session_token)}{_xml("Expiration", _iso(session.expires_at))}</Credentials>'
            f'<AssumedRoleUser>{_xml("AssumedRoleId", role_id + ":" + session.session_name)}'
            f'{_xml("Arn", assumed)}</AssumedRoleUser><PackedPolicySize>0</PackedPolicySize>')


def _param(params: dict[str, str], name: str, required: bool = True) -> str | None:
    value = params.get(name)
    if value is None and required:
        member = name[0].lower() + name[1:]
        raise StsError("ValidationError", f"1 validation error detected: Value null at '{member}' failed to "
                       "satisfy constraint: Member must not be null")
    return value


def _duration(state: State, params: dict[str, str], role: Role) -> float:
    with state.lock:
        default = float(getattr(state.config, "sts_default_duration_seconds", 3600.0))
        minimum = float(getattr(state.config, "sts_min_duration_seconds", 900.0))
    raw = params.get("DurationSeconds")
    if raw is None:
        return min(default, role.max_session_duration)
    try:
        value = float(int(raw))
    except ValueError:
        raise StsError("ValidationError", "DurationSeconds must be a whole number of seconds") from None
    if value < minimum or value > 43200:
        raise StsError("ValidationError", f"1 validation error detected: Value '{raw}' at 'durationSeconds' "
                       f"failed to satisfy constraint: Member must have value between {int(minimum)} and 43200")
    if value > role.max_session_duration:
        raise StsError("ValidationError", "The requested DurationSeconds exceeds the MaxSessionDuration set "
                       "for this role.")
    return value


def _session_name(params: dict[str, str]) -> str:
    name = _param(params, "RoleSessionName") or ""
    if not _SESSION_NAME.match(name):
        raise StsError("ValidationError", "1 validation error detected: Value at 'roleSessionName' failed to "
                       r"satisfy constraint: Member must satisfy regular expression pattern: [\w+=,.@-]*")
    return name


def _principal_arn(caller: Credential, store: Sessions) -> str:
    session = store.by_key.get(caller.access_key_id)
    if session is not None:
        role_name = session.role_arn.rsplit("/", 1)[-1]
        return f"arn:aws:sts::{caller.account_id}:assumed-role/{role_name}/{session.session_name}"
    return f"arn:aws:iam::{caller.account_id or '000000000000'}:user/emulator"


def _assume_role(state: State, caller: Credential, params: dict[str, str], request_id: str) -> bytes:
    arn = _param(params, "RoleArn") or ""
    name = _session_name(params)
    external_id = _param(params, "ExternalId", required=False)
    if external_id is not None and not _EXTERNAL_ID.match(external_id):
        raise StsError("ValidationError", "1 validation error detected: Value at 'externalId' failed to satisfy "
                       r"constraint: Member must satisfy regular expression pattern: [\w+=,.@:\/-]*")
    with state.lock:
        store = sessions_of(state)
        role = identity_of(state).roles.get(arn)
        principal = _principal_arn(caller, store)
        trusted = role is not None and (caller.access_key_id in role.trusted_access_keys
                                        or (caller.account_id is not None
                                            and caller.account_id in role.trusted_accounts))
        # AWS gives the same answer for an unknown role, an untrusted principal and a wrong External ID.
        if role is None or not trusted or (role.external_id is not None and external_id != role.external_id):
            raise StsError("AccessDenied", f"User: {principal} is not authorized to perform: sts:AssumeRole on "
                           f"resource: {arn}", 403)
    duration = _duration(state, params, role)
    with state.lock:
        session = store.issue(role, name, "AssumeRole", state.now(), duration)
    return _result_xml("AssumeRole", _session_xml(session, role), request_id)


def _assume_role_with_web_identity(state: State, params: dict[str, str], request_id: str) -> bytes:
    arn = _param(params, "RoleArn") or ""
    name = _session_name(params)
    token_value = _param(params, "WebIdentityToken") or ""
    with state.lock:
        identity = identity_of(state)
        token = identity.web_tokens.get(token_value)
        now = state.now()
        if token is None:
            raise StsError("InvalidIdentityToken", "The web identity token is not one the identity provider "
                           "issued (unknown token).")
        if token.expires_at is not None and now >= token.expires_at:
            raise StsError("ExpiredTokenException", "Token expired: current date/time must be before the "
                           "expiration date/time.")
        role = identity.roles.get(arn)
        if role is None or not any(w.issuer == token.issuer and w.subject in ("*", token.subject)
                                   for w in role.trusted_web_identities):
            raise StsError("AccessDenied", "Not authorized to perform sts:AssumeRoleWithWebIdentity", 403)
    duration = _duration(state, params, role)
    with state.lock:
        session = sessions_of(state).issue(role, name, "AssumeRoleWithWebIdentity", state.now(), duration)
    inner = (_session_xml(session, role) + _xml("SubjectFromWebIdentityToken", token.subject)
             + _xml("Provider", token.issuer) + _xml("Audience", token.audience))
    return _result_xml("AssumeRoleWithWebIdentity", inner, request_id)


def handle(state: State, headers: dict[str, str], body: bytes, request_id: str, path: str = "/",
           query: str = "") -> tuple[int, bytes]:
    """Serve one STS request; returns (status, XML body). Errors are STS XML errors. ``path`` and ``query``
    (the raw query string) are the request target's, which the SigV4 signature covers."""
    try:
        try:
            params = {k: v[-1] for k, v in parse_qs(body.decode("utf-8"), keep_blank_values=True).items()}
        except UnicodeDecodeError:
            raise StsError("MalformedQueryString", "The request body is not UTF-8 form data.") from None
        action = params.get("Action", "")
        if params.get("Version") != STS_VERSION:
            raise StsError("InvalidAction", f"Could not find operation {action} for version "
                           f"{params.get('Version', 'NO_VERSION_SPECIFIED')}")
        if action == "AssumeRoleWithWebIdentity":  # unsigned: the token is the proof
            return 200, _assume_role_with_web_identity(state, params, request_id)
        if action != "AssumeRole":
            raise StsError("InvalidAction", f"Could not find operation {action} for version {STS_VERSION}")
        scope = re.search(r"Credential=[^/]+/\d{8}/([^/]+)/", headers.get("authorization", ""))
        with state.lock:
            lookup = credential_lookup(state)
            now = state.now()
        try:
            # STS is signed for its own service name; the global endpoint is signed for us-east-1 and a
            # regional one for its region, so the scope's region is taken as it comes.
            caller = sigv4.verify("POST", path, headers, body, lookup, scope.group(1) if scope else "us-east-1",
                                  now, service="sts", query=query)
        except AwsError as err:
            code, status = _STS_AUTH_CODES.get(err.error_type, (err.error_type, err.status))
            raise StsError(code, err.message, status) from None
        return 200, _assume_role(state, caller, params, request_id)
    except StsError as err:
        return err.status, error_xml(err, request_id)


# -- admin API ------------------------------------------------------------------------------------

def _admin_sessions(state: State, body: Any, query: dict[str, str]) -> tuple[int, Any]:
    with state.lock:
        store = sessions_of(state)
        now = state.now()
        return 200, {"sessions": [s.as_json(now) for s in store.by_key.values()], "issued": dict(store.counts)}


def _admin_change(state: State, body: Any, expire: bool) -> tuple[int, Any]:
    if not isinstance(body, dict):
        body = {}
    role_arn = body.get("roleArn")
    if role_arn is not None and not isinstance(role_arn, str):
        raise AwsError("ValidationException", "roleArn must be a string")
    changed = 0
    with state.lock:
        now = state.now()
        for session in sessions_of(state).by_key.values():
            if role_arn is None or session.role_arn == role_arn:
                if expire:
                    session.expires_at = min(session.expires_at, now)
                else:
                    session.revoked = True
                changed += 1
    return 200, {"expired" if expire else "revoked": changed}


ADMIN_ROUTES: dict[str, dict[str, Callable[[State, Any, dict[str, str]], tuple[int, Any]]]] = {
    "sts/sessions": {"GET": _admin_sessions},
    "sts/expire": {"POST": lambda state, body, query: _admin_change(state, body, True)},
    "sts/revoke": {"POST": lambda state, body, query: _admin_change(state, body, False)},
}
