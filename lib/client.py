"""One client for all four operations: AWS JSON 1.1 over a pooled requests.Session, SigV4-signed."""

from __future__ import annotations

import hashlib
import http.client
import logging
import re
import ssl
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from functools import lru_cache
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import requests
from requests_aws4auth import AWS4Auth

from . import jsontext
from .credentials import role_credentials, session_rejected
from .deadline import DeadlineAdapter, end_attempt, start_attempt
from .errors import ErrorClass, Kind, MeteringError, Problem, parse_code
from .network import ca_bundle, is_loopback, loopback_url
from .operations import Operation
from .options import form_values
from .redact import scrub_known
from .resilience import Backoff, Pacer, Sleep, shared_pacer

# Two different strings that are easy to confuse: the host prefix and the SigV4 service name (botocore model
# metadata `endpointPrefix` and `signingName`; docs/metering-api.md, "Wire protocol").
ENDPOINT_PREFIX = "metering.marketplace"
SIGNING_NAME = "aws-marketplace"
TARGET_PREFIX = "AWSMPMeteringService"
CONTENT_TYPE = "application/x-amz-json-1.1"
USER_AGENT = "elasticio-aws-marketplace-metering/1.0.0"
DEFAULT_REGION = "us-east-1"
DEFAULT_TIMEOUT = (5.0, 30.0)  # connect, read (seconds); one attempt in all: at most their sum (lib/deadline.py)
# Idle connections the pool keeps. It must cover every call in flight at once: a connection returned to a
# full pool is closed (urllib3 logs "Connection pool is full, discarding connection") and the next call
# opens a new one, a TLS handshake to AWS each time. The sailor runs up to ELASTICIO_RABBITMQ_PREFETCH_SAILOR
# messages at once, at most 64 (sailor/elasticio_sailor/pools.py, MAX_WORKERS); urllib3 opens connections
# only on demand, so keeping up to 64 costs nothing at prefetch 1.
POOL_SIZE = 64

log = logging.getLogger(__name__)


def default_endpoint(region: str) -> str:
    """The regional endpoint; China regions live under amazonaws.com.cn."""
    suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"https://{ENDPOINT_PREFIX}.{region}.{suffix}"


# The credential values that end up in a header (the access key in Authorization, the session token in
# X-Amz-Security-Token) or in the signing key: AWS issues them as printable ASCII without spaces. Anything else
# (a line break pasted with the token, a control or non-Latin-1 character) would make http.client raise with
# the value in its message, so such values are refused up front, by field name and rule, never by value.
_CREDENTIAL_FIELDS = ("accessKeyId", "secretAccessKey", "sessionToken")
_PRINTABLE = re.compile(r"[!-~]*")
CREDENTIAL_RULE = ("must contain only printable ASCII characters, without spaces, line breaks, control or "
                   "non-ASCII characters (check for a line break or space copied with it)")


def credential_problems(values: dict[str, Any]) -> list[Problem]:
    """The credential fields of ``values`` (keyed by their cfg names) that hold characters AWS never issues."""
    return [Problem(f"/{name}", CREDENTIAL_RULE) for name in _CREDENTIAL_FIELDS
            if isinstance(values.get(name), str) and not _PRINTABLE.fullmatch(values[name])]


def _check_tls(field: str, url: str | None) -> None:
    if url:
        parts = urlsplit(url)
        if parts.scheme != "https" and not (parts.scheme == "http" and is_loopback(parts.hostname or "")):
            raise MeteringError("ValidationFailed", "1 problem(s) in the configuration", operation="configuration",
                                problems=[Problem(f"/{field}", "must use https (plain http only for "
                                                  "loopback addresses)")])
        if parts.username is not None or parts.password is not None:
            # AWS endpoints take no user name or password in the URL; one there would be echoed wherever the
            # URL is shown (verify answers, errors), and it is not a field the connector treats as secret
            raise MeteringError("ValidationFailed", "1 problem(s) in the configuration", operation="configuration",
                                problems=[Problem(f"/{field}", "must not contain a user name or password "
                                                  "(user:password@)")])


class Settings(NamedTuple):
    """Credentials and endpoint of one connector configuration (lib/credentials.py: the modes)."""

    access_key_id: str
    secret_access_key: str
    session_token: str | None
    region: str
    endpoint_url: str
    calls_per_second: float | None = None  # None: the documented quota of each operation
    auth_mode: str = "accessKeys"  # accessKeys | assumeRole | workloadIdentity
    role_arn: str | None = None
    external_id: str | None = None
    role_source: str = "accessKeys"  # Assume role from: accessKeys | workloadIdentity
    role_session_name: str | None = None
    session_duration: int | None = None
    sts_endpoint_url: str | None = None  # None: AWS_ENDPOINT_URL_STS, else botocore's regional endpoint

    def __repr__(self) -> str:  # never show the secrets, even in a traceback with locals
        return (f"Settings(auth_mode={self.auth_mode!r}, access_key_id={self.access_key_id!r}, "
                f"role_arn={self.role_arn!r}, region={self.region!r}, endpoint_url={self.endpoint_url!r})")

    @classmethod
    def create(cls, access_key_id: str = "", secret_access_key: str = "", *, region: str = DEFAULT_REGION,
               endpoint_url: str | None = None, session_token: str | None = None,
               calls_per_second: float | None = None, auth_mode: str = "accessKeys", role_arn: str | None = None,
               external_id: str | None = None, role_source: str = "accessKeys",
               role_session_name: str | None = None, session_duration: int | None = None,
               sts_endpoint_url: str | None = None) -> Settings:
        """Settings from typed arguments (library use); only the TLS, duration and credential character rules
        are checked here."""
        bad = credential_problems({"accessKeyId": access_key_id, "secretAccessKey": secret_access_key,
                                   "sessionToken": session_token})
        if bad:
            raise MeteringError("ValidationFailed", f"{len(bad)} problem(s) in the configuration",
                                operation="configuration", problems=bad)
        _check_tls("endpointUrl", endpoint_url)
        _check_tls("stsEndpointUrl", sts_endpoint_url)
        if session_duration is not None and not 900 <= session_duration <= 43200:
            raise MeteringError("ValidationFailed", "1 problem(s) in the configuration", operation="configuration",
                                problems=[Problem("/sessionDurationSeconds", "must be from 900 to 43200")])
        return cls(access_key_id=access_key_id, secret_access_key=secret_access_key,
                   session_token=session_token or None, region=region,
                   endpoint_url=(endpoint_url or default_endpoint(region)).rstrip("/") + "/",
                   calls_per_second=calls_per_second or None, auth_mode=auth_mode, role_arn=role_arn or None,
                   external_id=external_id or None, role_source=role_source or "accessKeys",
                   role_session_name=role_session_name or None, session_duration=session_duration,
                   sts_endpoint_url=sts_endpoint_url.rstrip("/") + "/" if sts_endpoint_url else None)

    @classmethod
    def from_cfg(cls, cfg: dict[str, Any]) -> Settings:
        """Validate a step ``cfg`` against schemas/config.json and build the settings; raise on any problem."""
        from .validation import problems  # jsonschema is imported only where a cfg is validated

        cfg = form_values(cfg)
        mode = cfg.get("authMode") or "accessKeys"
        keys = mode == "accessKeys" or (mode == "assumeRole" and cfg.get("roleSource") != "workloadIdentity")
        found = problems("config.json", cfg)
        if keys:  # every problem at once: the schema's and the credential characters (one entry per path)
            texts = {problem.path: problem.problem for problem in found}
            for problem in credential_problems(cfg):
                texts[problem.path] = "; ".join(filter(None, (texts.get(problem.path), problem.problem)))
            found = [Problem(path, text) for path, text in sorted(texts.items())]
        if found:
            raise MeteringError("ValidationFailed", f"{len(found)} problem(s) in the configuration",
                                operation="configuration", problems=found)
        role = mode == "assumeRole"
        return cls.create(cfg.get("accessKeyId", "") if keys else "", cfg.get("secretAccessKey", "") if keys else "",
                          region=cfg.get("region") or DEFAULT_REGION,
                          endpoint_url=cfg.get("endpointUrl") or None,
                          session_token=cfg.get("sessionToken") if keys else None,
                          calls_per_second=float(cfg["callsPerSecond"]) if cfg.get("callsPerSecond") else None,
                          auth_mode=mode, role_arn=cfg.get("roleArn") if role else None,
                          external_id=cfg.get("externalId") if role else None,
                          role_source=(cfg.get("roleSource") or "accessKeys") if role else "accessKeys",
                          role_session_name=cfg.get("roleSessionName") if role else None,
                          session_duration=int(cfg["sessionDurationSeconds"])
                          if role and cfg.get("sessionDurationSeconds") else None,
                          sts_endpoint_url=cfg.get("stsEndpointUrl") or None if mode != "accessKeys" else None)

    @property
    def secrets(self) -> tuple[str, ...]:
        """The configured secret values (masked in every text built from a third party's message)."""
        return tuple(v for v in (self.secret_access_key, self.session_token, self.external_id) if v)

    @property
    def credential_key(self) -> str:
        """A digest identifying the credential part (not the rate) without holding secrets in clear text."""
        raw = "\0".join([self.auth_mode, self.access_key_id, self.secret_access_key, self.session_token or "",
                         self.role_arn or "", self.external_id or "", self.role_source, self.role_session_name or "",
                         str(self.session_duration or ""), self.sts_endpoint_url or "", self.region])
        return hashlib.sha256(raw.encode()).hexdigest()

    @property
    def cache_key(self) -> str:
        """A digest identifying these settings without holding the secrets in clear text."""
        raw = "\0".join([self.credential_key, self.endpoint_url, repr(self.calls_per_second)])
        return hashlib.sha256(raw.encode()).hexdigest()

    @property
    def identity(self) -> str:
        """Who calls AWS, for sharing a pacer: the access key, else the role ARN or the workload."""
        if self.auth_mode == "accessKeys":
            return self.access_key_id
        return self.role_arn or f"workload:{self.credential_key[:16]}"


UNSENDABLE = ErrorClass(False, Kind.CREDENTIALS, "a credential or header holds a character HTTP does not allow "
                        "(a line break, control or non-Latin-1 character); re-enter the credentials")
# ssl errors that mean the network cut the handshake short (retried, as botocore retries its SSLError); any
# other TLS failure, a certificate that does not verify above all, is the endpoint's and is not retried.
_CUT_SHORT = (ssl.SSLEOFError, ssl.SSLZeroReturnError, ssl.SSLSyscallError, ConnectionError, TimeoutError)


# What tells that a connection failure happened before the request left: connecting (refused, DNS, connect
# timeout). Any other transport failure may have come after AWS received the request.
_NOT_SENT = (requests.exceptions.ConnectTimeout,)


def _never_sent(exc: BaseException) -> bool:
    """Whether the failure ``exc`` happened while connecting, so AWS cannot have received the request."""
    from urllib3.exceptions import ConnectTimeoutError, NewConnectionError  # requests' own dependency

    return any(isinstance(cause, (*_NOT_SENT, NewConnectionError, ConnectTimeoutError)) for cause in _causes(exc))


def _signing_key_id(headers: dict[str, str]) -> str | None:
    """The access key id a signed request names (``Authorization: AWS4-HMAC-SHA256 Credential=<id>/...``): an
    id, not a secret."""
    return headers.get("Authorization", "").partition("Credential=")[2].partition("/")[0] or None


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and what it wraps: requests' and urllib3's ``args[0]``/``reason`` and the exception chain."""
    found: list[BaseException] = []
    todo: list[Any] = [exc]
    while todo and len(found) < 16:
        item = todo.pop(0)
        if not isinstance(item, BaseException) or any(item is seen for seen in found):
            continue
        found.append(item)
        todo += [getattr(item, "reason", None), item.__cause__, item.__context__, *item.args[:1]]
    return found


def _tls_error(exc: BaseException, operation: str) -> MeteringError:
    """A certificate that does not verify is permanent; a handshake cut short by the network is retried."""
    causes = _causes(exc)
    if any(isinstance(cause, ssl.SSLCertVerificationError) for cause in causes):
        return MeteringError("TLSError", type(exc).__name__, operation=operation,
                             classification=ErrorClass(False, Kind.REGION, "TLS verification of the endpoint failed"))
    cut = next((cause for cause in causes if isinstance(cause, _CUT_SHORT)), None)
    if cut is not None:
        return MeteringError("ConnectionError", f"TLS handshake cut short ({type(cut).__name__})",
                             operation=operation)
    return MeteringError("TLSError", type(exc).__name__, operation=operation,
                         classification=ErrorClass(False, Kind.REGION, "the TLS handshake with the endpoint failed "
                                                   "(is it an HTTPS endpoint?)"))


class _Answer(NamedTuple):
    """What the transport hands back: status line, headers (case-insensitive) and the whole body."""

    status: int
    reason: str
    headers: Any  # requests' CaseInsensitiveDict or urllib3's HTTPHeaderDict; both have a case-insensitive get
    content: bytes


class _Signed:
    """The parts of a request requests-aws4auth reads and writes (method, url, body, headers).

    A plain dict holds the headers: the connector's own names never collide case-insensitively, the
    signer lower-cases names itself, and urllib3 iterates a dict far faster than requests'
    CaseInsensitiveDict. ``AWS4Auth.__call__`` only needs these four attributes.
    """

    __slots__ = ("body", "headers", "method", "url")

    def __init__(self, url: str, body: bytes, headers: dict[str, str]) -> None:
        self.method, self.url, self.body, self.headers = "POST", url, body, headers


class Reply(NamedTuple):
    """A successful response."""

    data: dict[str, Any]
    request_id: str | None
    attempts: int
    unanswered: tuple[int, ...] = ()  # earlier attempts whose answer was lost: AWS may have processed one


class MeteringClient:
    """Signs, sends, parses and retries calls to the Metering Service."""

    def __init__(self, settings: Settings, *, backoff: Backoff | None = None,
                 pacer_for: Callable[[Operation], Pacer] | None = None, sleep: Sleep = time.sleep,
                 timeout: tuple[float, float] = DEFAULT_TIMEOUT, pool_size: int = POOL_SIZE) -> None:
        self.settings = settings
        self.backoff = backoff or Backoff()
        self.timeout = timeout
        self._attempt_limit = sum(timeout)  # one attempt in all (lib/deadline.py)
        self._sleep = sleep
        self._pacer_for = pacer_for or (
            lambda op: shared_pacer(settings.identity, settings.region, op.name, self.rate_for(op)))
        self.session = requests.Session()
        self._verify = ca_bundle()  # never False: TLS verification is never switched off
        self.session.verify = self._verify
        if loopback_url(settings.endpoint_url):
            self.session.trust_env = False  # no proxy for a local endpoint
        # requests' adapter with a total time limit per attempt (a reply trickling in cannot hold a call)
        adapter = DeadlineAdapter(pool_connections=1, pool_maxsize=pool_size, max_retries=0)
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        # Access keys sign as they are; the role modes sign with botocore's refreshable credentials
        # (lib/credentials.py, which imports botocore only then).
        self._credentials = role_credentials(settings)
        self._auth_lock = threading.Lock()  # the signer swaps keys in place (_prepare)
        if self._credentials is None:
            self._auth = AWS4Auth(settings.access_key_id, settings.secret_access_key, settings.region,
                                  SIGNING_NAME, session_token=settings.session_token)
        else:
            self._auth = AWS4Auth(refreshable_credentials=self._credentials, region=settings.region,
                                  service=SIGNING_NAME)
        self.session.auth = self._auth
        self.session.headers.update({"Content-Type": CONTENT_TYPE, "User-Agent": USER_AGENT})
        # Requests are prepared here and handed to the session's pooled adapter directly: Session.request
        # re-merges settings, cookies and the environment on every call, which costs more CPU than the call.
        self._adapter = adapter  # the one mounted for both schemes (session.get_adapter would return it)
        template = requests.Request("POST", settings.endpoint_url).prepare()
        self._url = template.url or settings.endpoint_url
        self._proxies = {} if not self.session.trust_env else requests.utils.get_environ_proxies(self._url)
        # Only what the protocol needs: every extra header costs CPU in the signer and in http.client
        # (which adds "Accept-Encoding: identity" by itself; HTTP/1.1 keeps the connection alive by default).
        self._base_headers = {"Content-Type": CONTENT_TYPE, "User-Agent": USER_AGENT}

    def close(self) -> None:
        """Release pooled connections."""
        self.session.close()

    def rate_for(self, op: Operation) -> float:
        """Calls per second this client allows itself for ``op``: the configured rate, else the quota."""
        return self.settings.calls_per_second or op.rate_per_second

    def call(self, op: Operation, payload: dict[str, Any]) -> Reply:
        """Call ``op`` with a wire-ready payload; retry retryable failures with full-jitter backoff.

        Raises :class:`MeteringError`; ``retryable`` is true when attempts ran out on a transient failure.
        """
        body = jsontext.dumps(payload)
        headers = {"X-Amz-Target": f"{TARGET_PREFIX}.{op.name}"}
        pacer = self._pacer_for(op)
        attempt = 0
        unanswered: list[int] = []  # attempts whose answer was lost (the request may have been processed)
        while True:
            mark = pacer.wait()
            failure = None
            try:
                data, request_id = self._send(op, body, headers)
            except MeteringError as err:
                failure = err
            else:
                return Reply(data, request_id, attempt + 1, tuple(unanswered))
            finally:  # a throttling answer lowers the process's adaptive rate for this quota
                pacer.done(mark, throttled=failure is not None and failure.kind == Kind.THROTTLED)
            attempt += 1
            if not failure.retryable or attempt >= self.backoff.max_attempts:
                if unanswered and failure.code != "ConnectionError":
                    failure.after_unanswered(unanswered)
                raise failure
            if failure.code == "ConnectionError" and failure.operation == op.name and failure.maybe_sent:
                unanswered.append(attempt)  # AWS may have processed it (not: a failure to connect, or STS's)
            delay = self.backoff.delay(attempt - 1)
            log.info("%s attempt %d failed with %s (request id %s); retrying in %.3fs",
                     op.name, attempt, failure.code, failure.request_id, delay)
            self._sleep(delay)

    def _send(self, op: Operation, body: bytes, headers: dict[str, str]) -> tuple[dict[str, Any], str | None]:
        """One exchange; in a role mode an expired or revoked session is re-resolved once and resent."""
        try:
            return self._send_once(op, body, headers)
        except MeteringError as err:
            if self._credentials is None or not session_rejected(err):
                raise
            log.info("%s: the session credentials were refused (%s, request id %s); resolving them again",
                     op.name, err.code, err.request_id)
            self._credentials.reset(err.signed_with)  # unless another thread replaced that session already
        try:
            return self._send_once(op, body, headers)
        except MeteringError as err:
            if session_rejected(err):  # a fresh session refused too: the credentials are bad
                raise MeteringError(err.code, err.aws_message, operation=err.operation, status=err.status,
                                    request_id=err.request_id,
                                    classification=ErrorClass(False, Kind.CREDENTIALS, "bad credentials: the "
                                                              "session was refused again after resolving it "
                                                              "anew")) from None
            raise

    def _send_once(self, op: Operation, body: bytes, headers: dict[str, str]) -> tuple[dict[str, Any], str | None]:
        signed = self._prepare(body, headers)
        try:
            answer = self._exchange(signed)
        except requests.exceptions.SSLError as exc:
            raise _tls_error(exc, op.name) from None
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout,
                requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError) as exc:
            failure = MeteringError("ConnectionError", type(exc).__name__, operation=op.name)
            failure.maybe_sent = not _never_sent(exc)
            raise failure from None
        except requests.exceptions.RequestException as exc:  # e.g. a malformed reply: not worth retrying
            raise MeteringError("InvalidResponse", type(exc).__name__, operation=op.name,
                                classification=ErrorClass(False, Kind.REGION,
                                                          "is the endpoint URL right?")) from None
        except ValueError as exc:
            # http.client refuses a header value it cannot send ("Invalid header value b'<the session token>\\n'")
            # or encode (UnicodeEncodeError): the text may hold a secret, so only the type is kept. Not
            # retryable: the same request would fail the same way. Any other ValueError is a bug: raised as is.
            if not (isinstance(exc, UnicodeError) or str(exc).startswith("Invalid header")):
                raise
            raise MeteringError("RequestNotSent", f"the request could not be sent ({type(exc).__name__})",
                                operation=op.name, classification=UNSENDABLE) from None
        except (OSError, http.client.HTTPException) as exc:  # a transport failure requests did not wrap
            raise MeteringError("ConnectionError", type(exc).__name__, operation=op.name) from None
        request_id = answer.headers.get("x-amzn-RequestId")
        if answer.status < 300:
            try:
                data = jsontext.loads(answer.content)
            except ValueError:
                data = None
            if not isinstance(data, dict):
                raise MeteringError("InvalidResponse", "the endpoint did not answer with a JSON object",
                                    operation=op.name, status=answer.status, request_id=request_id,
                                    classification=ErrorClass(False, Kind.REGION,
                                                              "is the endpoint URL right?"))
            log.debug("%s %d request id %s", op.name, answer.status, request_id)
            return data, request_id
        failure = self._error(op, answer, request_id, self._secrets())
        # _send resets a refused session only if it is still the current one: N threads refused at once
        # resolve it once, not N times
        failure.signed_with = _signing_key_id(signed.headers)
        raise failure

    def _exchange(self, prep: _Signed) -> _Answer:
        """Send one signed request through the session's pooled adapter and read the whole reply.

        Session.request is skipped (it re-merges settings, cookies and the environment on every call);
        the adapter does the rest (pool, proxy, TLS). Transport failures raise requests' exceptions.
        """
        full = requests.PreparedRequest()
        full.method, full.url, full.body = prep.method, prep.url, prep.body
        full.headers = prep.headers  # type: ignore[assignment]  # a plain dict (see _Signed) is all the adapter reads
        start_attempt(self._attempt_limit)  # connect and every read of the reply, all together
        try:
            resp = self._adapter.send(full, timeout=self.timeout, verify=self._verify, proxies=self._proxies)
            content = resp.content  # read here: a connection dropped mid-body is a transport failure too
        finally:
            end_attempt()
        return _Answer(resp.status_code, resp.reason or "", resp.headers, content)

    def _prepare(self, body: bytes, headers: dict[str, str]) -> _Signed:
        """A signed request for the endpoint (the URL was prepared once; the signature is fresh)."""
        signed = _Signed(self._url, body, {**self._base_headers, **headers, "Content-Length": str(len(body))})
        # Adds x-amz-date, x-amz-content-sha256, the session token and Authorization. One thread at a time: the
        # signer swaps its signing key in place when the UTC date changes (a request dated 23:59:59 signed with
        # the next day's scope is refused), and in the role modes when the temporary credentials rotate (it
        # resolves or refreshes them first, and may raise MeteringError).
        with self._auth_lock:
            self._auth(signed)
        return signed

    def _secrets(self) -> tuple[str, ...]:
        """The configured secrets and those of the current temporary credentials (the learnt ones are
        masked by :func:`scrub_known` too; these are named so a reply is masked even before that)."""
        values = self.settings.secrets
        current = self._credentials.current() if self._credentials is not None else None
        if current is not None:
            values += tuple(v for v in (current.secret_key, current.token) if v)
        return values

    @staticmethod
    def _error(op: Operation, resp: _Answer, request_id: str | None, secrets: tuple[str, ...] = ()) -> MeteringError:
        """Parse an error reply the way botocore does (body ``__type`` first, then the header).

        AWS's message is masked before it is cut: an InvalidSignatureException quotes the canonical request,
        ``x-amz-security-token:<session token>`` included, and a token cut in half would escape the log filter.
        """
        try:
            data = jsontext.loads(resp.content)
        except ValueError:
            data = None
        code = message = ""
        if isinstance(data, dict):
            code = str(data.get("__type") or data.get("code") or "")
            message = str(data.get("message") or data.get("Message") or "")
        if not code:
            code = resp.headers.get("x-amzn-ErrorType", "")
        code = parse_code(code) if code else str(resp.status)
        if not message:
            message = resp.reason
        classification = None
        if code == "ExpiredTokenException" and (op.name != "ResolveCustomer" or "security token" in message.lower()):
            # Same code for an expired STS session token (any operation) and an expired registration token.
            classification = ErrorClass(False, Kind.CREDENTIALS, "the session token of the credentials has expired")
        return MeteringError(code, scrub_known(message, secrets)[:500], operation=op.name, status=resp.status,
                             request_id=request_id, classification=classification)


_CLIENTS: OrderedDict[str, MeteringClient] = OrderedDict()
_CLIENTS_LOCK = threading.Lock()
_MAX_CLIENTS = 16  # rotating temporary credentials must not pile up sessions


def client_for(settings: Settings) -> MeteringClient:
    """A process-wide client per configuration, so the connection pool survives between messages."""
    key = settings.cache_key  # two SHA-256 digests: computed once per message
    with _CLIENTS_LOCK:
        client = _CLIENTS.get(key)
        if client is None:
            client = _CLIENTS[key] = MeteringClient(settings)
            while len(_CLIENTS) > _MAX_CLIENTS:
                _CLIENTS.popitem(last=False)[1].close()
        _CLIENTS.move_to_end(key)
        return client


def settings_for(cfg: dict[str, Any]) -> Settings:
    """:meth:`Settings.from_cfg`, validated once per distinct configuration (a step's cfg is the same for
    every message; validating it on each one cost a few per cent of a Batch Meter Usage message's CPU).

    A cfg that fails validation is never cached (lru_cache keeps no exceptions): every message with it gets
    the same error again.
    """
    try:
        return _settings_of(tuple(sorted(cfg.items())))
    except TypeError:  # a value that is not hashable (not produced by the credentials form): no cache
        return Settings.from_cfg(cfg)


@lru_cache(maxsize=_MAX_CLIENTS)
def _settings_of(items: tuple[tuple[str, Any], ...]) -> Settings:
    return Settings.from_cfg(dict(items))
