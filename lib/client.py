"""One client for all four operations: AWS JSON 1.1 over a pooled requests.Session, SigV4-signed."""

from __future__ import annotations

import hashlib
import ipaddress
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import requests
from requests import exceptions as rexc
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict
from requests.utils import select_proxy
from requests_aws4auth import AWS4Auth
from urllib3 import HTTPConnectionPool, Timeout
from urllib3 import exceptions as u3exc

from .errors import ErrorClass, MeteringError, Problem, parse_code
from .operations import Operation
from .resilience import Backoff, Pacer, Sleep, shared_pacer

# Two different strings that are easy to confuse (pitfall P1): the host prefix and the SigV4 service name.
ENDPOINT_PREFIX = "metering.marketplace"
SIGNING_NAME = "aws-marketplace"
TARGET_PREFIX = "AWSMPMeteringService"
CONTENT_TYPE = "application/x-amz-json-1.1"
USER_AGENT = "elasticio-aws-marketplace-metering/1.0.0"
DEFAULT_REGION = "us-east-1"
DEFAULT_TIMEOUT = (5.0, 30.0)  # connect, read (seconds)

log = logging.getLogger(__name__)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def default_endpoint(region: str) -> str:
    """The regional endpoint; China regions live under amazonaws.com.cn."""
    suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"https://{ENDPOINT_PREFIX}.{region}.{suffix}"


class Settings(NamedTuple):
    """Credentials and endpoint of one connector configuration."""

    access_key_id: str
    secret_access_key: str
    session_token: str | None
    region: str
    endpoint_url: str
    calls_per_second: float | None = None  # None: the documented quota of each operation

    def __repr__(self) -> str:  # never show the secrets, even in a traceback with locals
        return f"Settings(access_key_id={self.access_key_id!r}, region={self.region!r}, endpoint_url={self.endpoint_url!r})"

    @classmethod
    def create(cls, access_key_id: str, secret_access_key: str, *, region: str = DEFAULT_REGION,
               endpoint_url: str | None = None, session_token: str | None = None,
               calls_per_second: float | None = None) -> Settings:
        """Settings from typed arguments (library use); only the TLS rule is checked here."""
        if endpoint_url:
            parts = urlsplit(endpoint_url)
            if parts.scheme != "https" and not (parts.scheme == "http" and _is_loopback(parts.hostname or "")):
                raise MeteringError("ValidationFailed", "1 problem(s) in the configuration", operation="configuration",
                                    problems=[Problem("/endpointUrl", "must use https (plain http only for "
                                                      "loopback addresses)")])
        return cls(access_key_id=access_key_id, secret_access_key=secret_access_key,
                   session_token=session_token or None, region=region,
                   endpoint_url=(endpoint_url or default_endpoint(region)).rstrip("/") + "/",
                   calls_per_second=calls_per_second or None)

    @classmethod
    def from_cfg(cls, cfg: dict[str, Any]) -> Settings:
        """Validate a step ``cfg`` against schemas/config.json and build the settings; raise on any problem."""
        from .validation import problems  # jsonschema is imported only where a cfg is validated

        found = problems("config.json", cfg)
        if found:
            raise MeteringError("ValidationFailed", f"{len(found)} problem(s) in the configuration",
                                operation="configuration", problems=found)
        return cls.create(cfg["accessKeyId"], cfg["secretAccessKey"], region=cfg.get("region") or DEFAULT_REGION,
                          endpoint_url=cfg.get("endpointUrl") or None, session_token=cfg.get("sessionToken"),
                          calls_per_second=float(cfg["callsPerSecond"]) if cfg.get("callsPerSecond") else None)

    @property
    def cache_key(self) -> str:
        """A digest identifying these settings without holding the secrets in clear text."""
        raw = "\0".join([self.access_key_id, self.secret_access_key, self.session_token or "",
                         self.region, self.endpoint_url, repr(self.calls_per_second)])
        return hashlib.sha256(raw.encode()).hexdigest()


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


class MeteringClient:
    """Signs, sends, parses and retries calls to the Metering Service."""

    def __init__(self, settings: Settings, *, backoff: Backoff | None = None,
                 pacer_for: Callable[[Operation], Pacer] | None = None, sleep: Sleep = time.sleep,
                 timeout: tuple[float, float] = DEFAULT_TIMEOUT, pool_size: int = 4) -> None:
        self.settings = settings
        self.backoff = backoff or Backoff()
        self.timeout = timeout
        self._sleep = sleep
        self._pacer_for = pacer_for or (
            lambda op: shared_pacer(settings.access_key_id, settings.region, op.name, self.rate_for(op)))
        self.session = requests.Session()
        self.session.verify = True  # TLS verification is never switched off
        if _is_loopback(urlsplit(settings.endpoint_url).hostname or ""):
            self.session.trust_env = False  # no proxy for a local endpoint
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=pool_size, max_retries=0)
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        self.session.auth = self._auth = AWS4Auth(settings.access_key_id, settings.secret_access_key,
                                                  settings.region, SIGNING_NAME, session_token=settings.session_token)
        self.session.headers.update({"Content-Type": CONTENT_TYPE, "User-Agent": USER_AGENT})
        # Requests are prepared here and handed to the session's pooled adapter directly: Session.request
        # re-merges settings, cookies and the environment on every call, which costs more CPU than the call.
        self._adapter = adapter  # the one mounted for both schemes (session.get_adapter would return it)
        template = requests.Request("POST", settings.endpoint_url).prepare()
        self._url = template.url or settings.endpoint_url
        self._proxies = {} if not self.session.trust_env else requests.utils.get_environ_proxies(self._url)
        # Without a proxy for the endpoint, requests' adapter only picks the pooled urllib3 connection pool,
        # converts the timeout and wraps the reply in a Response; doing those once here and calling the pool
        # directly halves the CPU of a call. Exceptions are mapped exactly as the adapter maps them.
        self._direct = select_proxy(self._url, self._proxies) is None
        self._path = template.path_url
        self._template = template
        self._u3_timeout = Timeout(connect=timeout[0], read=timeout[1])
        self._pool: HTTPConnectionPool | None = None
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
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        headers = {"X-Amz-Target": f"{TARGET_PREFIX}.{op.name}"}
        pacer = self._pacer_for(op)
        attempt = 0
        while True:
            mark = pacer.wait()
            failure = None
            try:
                data, request_id = self._send(op, body, headers)
            except MeteringError as err:
                failure = err
            else:
                return Reply(data, request_id, attempt + 1)
            finally:  # a throttling answer lowers the process's adaptive rate for this quota
                pacer.done(mark, throttled=failure is not None and failure.kind == "throttled")
            attempt += 1
            if not failure.retryable or attempt >= self.backoff.max_attempts:
                raise failure
            delay = self.backoff.delay(attempt - 1)
            log.info("%s attempt %d failed with %s (request id %s); retrying in %.3fs",
                     op.name, attempt, failure.code, failure.request_id, delay)
            self._sleep(delay)

    def _send(self, op: Operation, body: bytes, headers: dict[str, str]) -> tuple[dict[str, Any], str | None]:
        try:
            answer = self._exchange(self._prepare(body, headers))
        except requests.exceptions.SSLError as exc:
            raise MeteringError("TLSError", type(exc).__name__, operation=op.name,
                                classification=ErrorClass(False, "region-or-endpoint",
                                                          "TLS verification of the endpoint failed")) from None
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout,
                requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError) as exc:
            raise MeteringError("ConnectionError", type(exc).__name__, operation=op.name) from None
        except requests.exceptions.RequestException as exc:  # e.g. a malformed reply: not worth retrying
            raise MeteringError("InvalidResponse", type(exc).__name__, operation=op.name,
                                classification=ErrorClass(False, "region-or-endpoint",
                                                          "is the endpoint URL right?")) from None
        request_id = answer.headers.get("x-amzn-RequestId")
        if answer.status < 300:
            try:
                data = json.loads(answer.content)
            except ValueError:
                data = None
            if not isinstance(data, dict):
                raise MeteringError("InvalidResponse", "the endpoint did not answer with a JSON object",
                                    operation=op.name, status=answer.status, request_id=request_id,
                                    classification=ErrorClass(False, "region-or-endpoint",
                                                              "is the endpoint URL right?"))
            log.debug("%s %d request id %s", op.name, answer.status, request_id)
            return data, request_id
        raise self._error(op, answer, request_id)

    def _exchange(self, prep: _Signed) -> _Answer:
        """Send one signed request and read the whole reply; transport failures raise requests' exceptions."""
        if not self._direct:  # through a proxy: requests' adapter handles proxy URLs, tunnels and headers
            full = requests.PreparedRequest()
            full.method, full.url, full.body = prep.method, prep.url, prep.body
            full.headers = CaseInsensitiveDict(prep.headers)
            resp = self._adapter.send(full, timeout=self.timeout, verify=True, proxies=self._proxies)
            content = resp.content  # read here: a connection dropped mid-body is a transport failure too
            return _Answer(resp.status_code, resp.reason or "", resp.headers, content)
        pool = self._pool
        if pool is None or pool.pool is None:  # first call, or the session was closed meanwhile
            pool = self._pool = self._connection_pool()
        try:
            raw = pool.urlopen("POST", self._path, body=prep.body, headers=prep.headers, redirect=False,
                               assert_same_host=False, preload_content=False, decode_content=False,
                               retries=self._adapter.max_retries, timeout=self._u3_timeout, chunked=False)
        except (u3exc.ProtocolError, OSError) as err:  # the same mapping as HTTPAdapter.send
            raise rexc.ConnectionError(err) from None
        except u3exc.MaxRetryError as err:
            reason = err.reason
            if isinstance(reason, u3exc.ConnectTimeoutError) and not isinstance(reason, u3exc.NewConnectionError):
                raise rexc.ConnectTimeout(err) from None
            if isinstance(reason, u3exc.ResponseError):
                raise rexc.RetryError(err) from None
            if isinstance(reason, u3exc.ProxyError):
                raise rexc.ProxyError(err) from None
            if isinstance(reason, u3exc.SSLError):
                raise rexc.SSLError(err) from None
            raise rexc.ConnectionError(err) from None
        except u3exc.ClosedPoolError as err:
            raise rexc.ConnectionError(err) from None
        except u3exc.ProxyError as err:
            raise rexc.ProxyError(err) from None
        except u3exc.SSLError as err:
            raise rexc.SSLError(err) from None
        except u3exc.ReadTimeoutError as err:
            raise rexc.ReadTimeout(err) from None
        except u3exc.InvalidHeader as err:
            raise rexc.InvalidHeader(err) from None
        try:  # read the body here: a connection dropped mid-body is a transport failure too
            content = raw.read(decode_content=True)
        except u3exc.ProtocolError as err:  # the same mapping as Response.content
            raise rexc.ChunkedEncodingError(err) from None
        except u3exc.DecodeError as err:
            raise rexc.ContentDecodingError(err) from None
        except u3exc.ReadTimeoutError as err:
            raise rexc.ConnectionError(err) from None
        except u3exc.SSLError as err:
            raise rexc.SSLError(err) from None
        return _Answer(raw.status, raw.reason or "", raw.headers, content)

    def _connection_pool(self) -> HTTPConnectionPool:
        """The adapter's pooled connections for the endpoint, with the TLS settings the adapter applies."""
        pool: HTTPConnectionPool = self._adapter.get_connection_with_tls_context(self._template, True, proxies={})
        self._adapter.cert_verify(pool, self._url, True, None)
        return pool

    def _prepare(self, body: bytes, headers: dict[str, str]) -> _Signed:
        """A signed request for the endpoint (the URL was prepared once; the signature is fresh)."""
        signed = _Signed(self._url, body, {**self._base_headers, **headers, "Content-Length": str(len(body))})
        self._auth(signed)  # adds x-amz-date, x-amz-content-sha256, the session token and Authorization
        return signed

    @staticmethod
    def _error(op: Operation, resp: _Answer, request_id: str | None) -> MeteringError:
        """Parse an error reply the way botocore does (body ``__type`` first, then the header)."""
        try:
            data = json.loads(resp.content)
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
            classification = ErrorClass(False, "credentials", "the session token of the credentials has expired")
        return MeteringError(code, message[:500], operation=op.name, status=resp.status,
                             request_id=request_id, classification=classification)


_CLIENTS: OrderedDict[str, MeteringClient] = OrderedDict()
_CLIENTS_LOCK = threading.Lock()
_MAX_CLIENTS = 16  # rotating temporary credentials must not pile up sessions


def client_for(settings: Settings) -> MeteringClient:
    """A process-wide client per configuration, so the connection pool survives between messages."""
    with _CLIENTS_LOCK:
        client = _CLIENTS.get(settings.cache_key)
        if client is None:
            client = _CLIENTS[settings.cache_key] = MeteringClient(settings)
            while len(_CLIENTS) > _MAX_CLIENTS:
                _CLIENTS.popitem(last=False)[1].close()
        _CLIENTS.move_to_end(settings.cache_key)
        return client
