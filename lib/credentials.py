"""Where the signing credentials come from: pasted access keys, an assumed role, or the workload identity.

Access keys are signed as they are (this module then imports nothing beyond the standard library).
The role modes resolve and refresh temporary credentials with botocore's credential providers, the
reference implementation of the AWS credential chain (botocore 1.44.8 ``botocore/credentials.py``):
``AssumeRoleCredentialFetcher`` + ``DeferredRefreshableCredentials`` for Assume role,
``AssumeRoleWithWebIdentityProvider`` (EKS IRSA: ``AWS_WEB_IDENTITY_TOKEN_FILE`` + ``AWS_ROLE_ARN``),
``ContainerProvider`` (ECS task role: ``AWS_CONTAINER_CREDENTIALS_RELATIVE_URI``/``_FULL_URI``) and
``InstanceMetadataProvider`` (EC2 instance role over IMDSv2, ``AWS_EC2_METADATA_SERVICE_ENDPOINT``) for
the workload identity. botocore is imported only when a role mode is used. The metering calls
themselves stay on the connector's client: requests-aws4auth signs with the refreshable credentials
(``AWS4Auth(refreshable_credentials=...)`` calls ``get_frozen_credentials()`` for every request).
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from .errors import CREDENTIALS, TRANSIENT, ErrorClass, MeteringError
from .network import ca_bundle, loopback_url
from .redact import _MIN_SECRET_LENGTH, guard, mask_word, register_secrets, scrub_known

if TYPE_CHECKING:
    from .client import Settings

ACCESS_KEYS, ASSUME_ROLE, WORKLOAD = "accessKeys", "assumeRole", "workloadIdentity"
MODES = (ACCESS_KEYS, ASSUME_ROLE, WORKLOAD)
DEFAULT_SESSION_NAME = "elasticio-metering"
WORKLOAD_PROVIDERS = ("assume-role-with-web-identity", "container-role", "iam-role")  # botocore METHOD names
# Answers of the metering endpoint that mean the session itself was refused (expired or revoked).
SESSION_REJECTED = ("ExpiredTokenException", "UnrecognizedClientException", "InvalidClientTokenId")
NO_WORKLOAD_IDENTITY = "NoWorkloadIdentity"
_STS_TRANSIENT = ("Throttling", "ThrottlingException", "RequestLimitExceeded", "ServiceUnavailable",
                  "InternalFailure", "IDPCommunicationError")
_MAX_SOURCES = 16

log = logging.getLogger(__name__)


def session_rejected(err: MeteringError) -> bool:
    """Whether the metering endpoint refused the credentials themselves (not the request)."""
    if err.code == "ExpiredTokenException":  # also the code of an expired registration token
        return "security token" in err.aws_message.lower() or err.kind == CREDENTIALS
    return err.code in SESSION_REJECTED


def _quiet_botocore(secrets: tuple[str, ...] = ()) -> None:
    """botocore logs request and response bodies at DEBUG (``botocore.parsers``, ``botocore.endpoint``):
    STS answers carry the session credentials, AssumeRoleWithWebIdentity requests the token. Those
    loggers are capped at INFO so no DEBUG configuration of the platform can print them. What they still
    log (``botocore.credentials`` warns with the traceback of a failed refresh, whose text may quote a
    header value) is masked with the configured secrets and those learnt at run time."""
    for name in ("botocore", "botocore.parsers", "botocore.endpoint", "botocore.hooks", "botocore.auth",
                 "botocore.credentials", "botocore.utils", "botocore.httpsession", "botocore.retryhandler",
                 "botocore.retries.standard"):
        logger = logging.getLogger(name)
        if logger.getEffectiveLevel() < logging.INFO or logger.level < logging.INFO:
            logger.setLevel(logging.INFO)
        if not any(isinstance(f, _NoUnreadAnswers) for f in logger.filters):
            logger.addFilter(_NoUnreadAnswers())  # before the masking filter: it renders what is left
        guard(logger, secrets)


_UNREAD = "STS's answer could not be read (ResponseParserError; its text is not shown: it may hold credentials)"


def _unread_answer(exc: BaseException | None) -> bool:
    """Whether ``exc`` (or what it wraps) is botocore's ResponseParserError, whose text quotes the whole raw
    answer: a session's secret key and token that no filter knows yet (the answer was cut short)."""
    return any(type(item).__name__ == "ResponseParserError" for item in _chain(exc)) if exc is not None else False


class _NoUnreadAnswers(logging.Filter):
    """botocore.credentials warns with the traceback of a failed refresh: a ResponseParserError's traceback
    is replaced by one line saying so."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and _unread_answer(record.exc_info[1]):
            record.msg, record.args = f"{record.getMessage()} {_UNREAD}", None
            record.exc_info, record.exc_text = None, None
        return True


class _NeverStore(dict):  # type: ignore[type-arg]
    """A fetcher cache that keeps nothing: refresh timing is left to RefreshableCredentials alone."""

    def __setitem__(self, key: Any, value: Any) -> None:
        return None


_TOKEN_FILES: dict[str, tuple[int, int, int]] = {}  # path -> (inode, mtime ns, size) when last read


def _register_workload_secrets() -> None:
    """The web-identity token and the container authorization token are secrets too.

    The kubelet (IRSA, Pod Identity) rotates the token files, and botocore reads them again at every refresh:
    this runs before each use of the credentials (and before a failed refresh is reported), and reads a file
    again whenever it changed, so a rotated token is masked before botocore sends it (or STS quotes it back).
    """
    values = [os.environ.get("AWS_CONTAINER_AUTHORIZATION_TOKEN", "")]
    for name in ("AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"):
        path = os.environ.get(name)
        if path:
            try:
                info = os.stat(path)
                stamp = (info.st_ino, info.st_mtime_ns, info.st_size)
                if _TOKEN_FILES.get(path) == stamp:
                    continue
                with open(path, encoding="utf-8") as handle:
                    register_secrets([handle.read().strip()], owner=f"file:{path}")  # rotates: keep the last 2
                _TOKEN_FILES[path] = stamp
            except (OSError, ValueError):
                pass
    register_secrets(v for v in values if v)


class _Registering:
    """Source credentials whose every frozen copy is registered as secrets before it is used.

    Assume role from the workload identity: the workload's session (IRSA, ECS task or EC2 instance role)
    signs the AssumeRole call, and STS's answer to a bad signature quotes the canonical request, session
    token included. botocore's AssumeRoleCredentialFetcher only calls ``get_frozen_credentials``.
    """

    def __init__(self, credentials: Any) -> None:
        self._credentials = credentials

    def get_frozen_credentials(self) -> Any:
        frozen = self._credentials.get_frozen_credentials()
        register_secrets([frozen.secret_key, frozen.token or ""], owner=f"source:{id(self)}")
        return frozen

    def __getattr__(self, name: str) -> Any:
        return getattr(self._credentials, name)


def _mask_short(text: str, value: str | None) -> str:
    """``text`` with ``value`` masked where it stands as a word of its own, however short: an External ID may
    be 2 or 3 characters (AWS's minimum is 2), below the length masked everywhere, and STS may quote it."""
    return mask_word(text, value) if value and len(value) < _MIN_SECRET_LENGTH else text


# What botocore's text says when the ECS/EKS container credentials endpoint could not be reached
# (botocore.utils.ContainerMetadataFetcher._get_response: one of its RETRYABLE_HTTP_ERRORS).
_CONTAINER_UNREACHABLE = "Received error when attempting to retrieve container metadata"
_CONTAINER_BUSY = re.compile(r"Received non 200 response (?:5\d\d|429) from container metadata")
# botocore's answer when a refresh got nothing back: the EC2 instance metadata service answers a busy 503/429
# with nothing (its fetcher returns {}), even in the advisory window while the current credentials still hold
_REFRESH_EMPTY = "Credential refresh failed, response did not contain"


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and the exceptions it was raised from or while handling (botocore re-raises without ``from``)."""
    found: list[BaseException] = []
    item: BaseException | None = exc
    while item is not None and len(found) < 16 and not any(item is seen for seen in found):
        found.append(item)
        item = item.__cause__ or item.__context__
    return found


def _network_failure(exc: BaseException) -> BaseException | None:
    """The transient network failure behind ``exc`` (a connection refused, closed or timed out, a TLS
    handshake cut short), or None when the credentials or the configuration are at fault.

    The same failures botocore retries itself (``botocore.retries.standard``: its ``ConnectionError`` and
    ``HTTPClientError``, e.g. ``ConnectionClosedError``, ``ReadTimeoutError``), except a certificate that does
    not verify and an ``HTTPClientError`` that is not about the connection (a header value it cannot send).
    """
    import ssl

    from botocore import exceptions as bexc

    chain = _chain(exc)
    if any(isinstance(item, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(item)
           for item in chain):
        return None
    for item in chain:
        if isinstance(item, (bexc.ConnectionError, bexc.ConnectionClosedError, bexc.ReadTimeoutError,
                             bexc.ResponseStreamingError, ConnectionError, TimeoutError)):
            return item
    if isinstance(exc, bexc.CredentialRetrievalError) and (
            _CONTAINER_UNREACHABLE in str(exc) or _CONTAINER_BUSY.search(str(exc)) or _REFRESH_EMPTY in str(exc)):
        return exc
    return None


def _unreadable(settings: Settings) -> ErrorClass:
    """The hint for a failure that is neither STS's answer nor the network, by where credentials come from."""
    if settings.auth_mode == ASSUME_ROLE and settings.role_source != WORKLOAD:
        return ErrorClass(False, CREDENTIALS, "the role could not be assumed with the access keys (check the "
                          "access keys, the Role ARN and the STS endpoint URL)")
    return ErrorClass(False, CREDENTIALS, "the workload identity could not be read (check the container's "
                      "credentials endpoint)")


def translate(exc: BaseException, settings: Settings) -> MeteringError:
    """A botocore failure while resolving credentials as a MeteringError a user can act on.

    Every text taken from botocore is masked with the configured secrets and those learnt at run time: an
    ``HTTPClientError`` quotes the header value http.client refused, which may be the session token.
    """
    from botocore import exceptions as bexc

    if isinstance(exc, MeteringError):
        return exc
    if _unread_answer(exc):  # its text holds the raw answer: not a word of it goes on (botocore: retry may work)
        return MeteringError("ResponseParserError", _UNREAD, operation="credentials",
                             classification=ErrorClass(True, TRANSIENT, "retried"))
    secrets = settings.secrets
    if isinstance(exc, bexc.ClientError):
        error = exc.response.get("Error", {})
        meta = exc.response.get("ResponseMetadata", {})
        code = str(error.get("Code") or "Unknown")
        message = _mask_short(scrub_known(str(error.get("Message") or ""), secrets), settings.external_id)
        operation = exc.operation_name or "AssumeRole"
        if code in _STS_TRANSIENT or int(meta.get("HTTPStatusCode") or 0) >= 500:
            kind = ErrorClass(True, TRANSIENT, "STS is unavailable; retried")
        elif operation == "AssumeRoleWithWebIdentity":
            kind = ErrorClass(False, CREDENTIALS, "the role's trust policy does not allow this web identity "
                              "(OIDC issuer and service account), or the token is invalid or expired")
        else:
            kind = ErrorClass(False, CREDENTIALS, "the role cannot be assumed: its trust policy must allow "
                              "this identity and the External ID must match")
        return MeteringError(code, message[:500], operation=operation, status=meta.get("HTTPStatusCode"),
                             request_id=meta.get("RequestId"), classification=kind)
    cause = _network_failure(exc)
    if cause is not None:  # retryable (ERROR_TABLE's ConnectionError): retried in the step, then rebounded
        where = ("STS" if not isinstance(exc, bexc.CredentialRetrievalError)
                 else "the instance metadata service" if _REFRESH_EMPTY in str(exc)
                 else "the container credentials endpoint")
        return MeteringError("ConnectionError", f"could not reach {where} ({type(cause).__name__})",
                             operation="credentials")
    if isinstance(exc, bexc.ParamValidationError):
        return MeteringError("ValidationFailed", scrub_known(str(exc), secrets)[:500], operation="configuration")
    text = scrub_known(str(exc), secrets)[:500]
    return MeteringError(type(exc).__name__, text, operation="credentials", classification=_unreadable(settings))


_IMDS_TOKEN_TTL = "21600"


def _issued(answer: Any) -> bool:
    """Whether the metadata service's answer to a role's credentials request holds credentials (it answers 200
    with ``{"Code": "AssumeRoleUnauthorizedAccess", ...}`` for a role EC2 may not assume). Only the ``Code`` is
    read: the answer holds the secret key and token."""
    try:
        body = answer.json()
    except ValueError:
        return False
    return isinstance(body, dict) and body.get("Code") == "Success"


def _imds_busy(provider: Any) -> str | None:
    """Why the EC2 instance metadata service looks busy rather than absent (a 429 or 5xx answer to a lookup
    of the instance role, or a role found now), or None (no such service, disabled, or no role).

    botocore's provider answers "no instance role" for a busy service as for a machine without one (its
    fetcher returns nothing): after it found nothing, this asks again, so a busy service is a transient
    failure (retried, then rebounded) rather than a configuration error that fails the message. The same
    three requests as botocore (``InstanceMetadataFetcher``): an IMDSv2 token, the role's name, its
    credentials (whose answer is read for its status only: it holds a secret).
    """
    import requests

    fetcher = getattr(provider, "_role_fetcher", None)
    if fetcher is None or getattr(fetcher, "_disabled", False) or not hasattr(fetcher, "get_base_url"):
        return None
    base = fetcher.get_base_url().rstrip("/") + "/"
    timeout = float(getattr(fetcher, "_timeout", 1.0) or 1.0)
    path = "latest/meta-data/iam/security-credentials/"

    def busy(answer: requests.Response) -> bool:
        return answer.status_code == 429 or answer.status_code >= 500

    try:
        with requests.Session() as http:
            http.trust_env = False  # link-local: never through a proxy (a proxy's 502 is not a busy service)
            token = http.put(base + "latest/api/token", timeout=timeout,
                             headers={"x-aws-ec2-metadata-token-ttl-seconds": _IMDS_TOKEN_TTL})
            if busy(token):
                return f"answered HTTP {token.status_code} to a token request"
            headers = {"x-aws-ec2-metadata-token": token.text} if token.status_code == 200 else {}
            roles = http.get(base + path, headers=headers, timeout=timeout)
            if busy(roles):
                return f"answered HTTP {roles.status_code} to the lookup of the instance role"
            role = roles.text.strip().splitlines()[0] if roles.status_code == 200 and roles.text.strip() else ""
            if not role:
                return None
            creds = http.get(base + path + role, headers=headers, timeout=timeout)
            if busy(creds):
                return f"answered HTTP {creds.status_code} to the request for the role's credentials"
            if creds.status_code == 200 and _issued(creds):  # not a 200 error (a role EC2 may not assume)
                return "answers now, having answered nothing usable a moment before"
    except requests.RequestException:  # not reachable: no instance metadata service here
        return None
    return None


class RoleCredentials:
    """Temporary credentials of one credential configuration, resolved by botocore and refreshed before
    they expire; ``reset()`` drops them so the next request resolves them again.

    The object requests-aws4auth reads: ``get_frozen_credentials()`` returns botocore's
    ``ReadOnlyCredentials`` (access key, secret key, token) valid for the next request.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.RLock()
        self._current: Any = None  # a botocore RefreshableCredentials / Credentials
        self._seen_key: str | None = None
        self._frozen: Any = None  # the credentials handed out last (their secrets are masked in errors)
        self.resolutions = 0  # how often the credentials were resolved from scratch (tests, logs)
        self.refreshes = 0  # how many distinct temporary keys were used
        # the workload identity is used (alone or to assume the role): its token files may rotate
        self._workload_tokens = WORKLOAD in (settings.auth_mode, settings.role_source)

    def reset(self, refused_key: str | None = None) -> None:
        """Forget the credentials (an expired or revoked session): the next use resolves them anew.

        ``refused_key``: the access key of the refused request. When the credentials handed out since are
        another session's (a thread refused at the same time reset them first), they are kept."""
        with self._lock:
            if refused_key is not None and self._frozen is not None and self._frozen.access_key != refused_key:
                return
            self._current = None
            self._seen_key = None

    def current(self) -> Any:
        """The credentials handed out last (botocore's ``ReadOnlyCredentials``), or None; never resolves."""
        return self._frozen

    def method(self) -> str | None:
        """botocore's name of the provider that produced the credentials (e.g. ``container-role``)."""
        current = self._current
        return getattr(current, "method", None) if current is not None else None

    def get_frozen_credentials(self) -> Any:
        """Credentials for one request (resolved on first use, refreshed when near expiry)."""
        from botocore.exceptions import BotoCoreError, ClientError
        from botocore.parsers import ResponseParserError  # a bare Exception quoting the raw answer

        with self._lock:
            if self._workload_tokens:
                _register_workload_secrets()  # a rotated token file: masked before botocore reads and sends it
            try:
                if self._current is None:
                    self._current = self._resolve()
                    self.resolutions += 1
                frozen = self._current.get_frozen_credentials()
            except MeteringError:
                raise
            except (BotoCoreError, ClientError, ResponseParserError, OSError, ValueError, RuntimeError) as exc:
                failure = translate(exc, self.settings)  # botocore's failures, their texts masked
                if self._current is not None and failure.retryable:  # a refresh the source could not answer now
                    if self._frozen is not None and self._still_valid(self._current):
                        log.warning("refreshing the temporary credentials failed (%s: %s); the current ones stay "
                                    "valid for now", failure.code, failure.aws_message)
                        return self._frozen
                    raise failure from None  # kept: the next attempt refreshes them again
                self._current = None
                raise failure from None
            if frozen.access_key != self._seen_key:
                self._seen_key = frozen.access_key
                self.refreshes += 1
                register_secrets([frozen.secret_key, frozen.token or ""], owner=f"session:{id(self)}")
                self._tune(self._current)
                log.info("using temporary credentials %s from %s", frozen.access_key,
                         getattr(self._current, "method", "botocore"))
            self._frozen = frozen
            return frozen

    @staticmethod
    def _still_valid(creds: Any) -> bool:
        """Whether botocore's refreshable ``creds`` are outside their mandatory refresh window (a refresh failed
        in the advisory window: botocore itself keeps them then, unless its fetcher answered nothing, as the
        EC2 instance metadata service's does when it is busy)."""
        expiry = getattr(creds, "_expiry_time", None)
        mandatory = getattr(creds, "_mandatory_refresh_timeout", None)
        if expiry is None or mandatory is None:
            return False
        return bool(expiry.timestamp() - time.time() > mandatory)

    @staticmethod
    def _tune(creds: Any) -> None:
        """Refresh windows scaled to the session's lifetime.

        botocore refreshes 15 min (advisory) / 10 min (mandatory) before expiry: a 15-minute session
        would then be re-fetched for every request. Half / a quarter of the lifetime, capped at botocore's
        values, keeps 1-hour sessions at botocore's behaviour and short ones usable.
        """
        expiry = getattr(creds, "_expiry_time", None)
        if expiry is None:
            return
        remaining = expiry.timestamp() - time.time()
        if remaining > 0:
            creds._advisory_refresh_timeout = min(15 * 60, remaining / 2)
            creds._mandatory_refresh_timeout = min(10 * 60, remaining / 4)

    def _client_creator(self) -> Any:
        import botocore.session
        from botocore.config import Config

        session = botocore.session.Session()
        settings = self.settings
        base = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=15)
        # As the metering client does (lib/client.py): TLS is verified against the same bundle (botocore alone
        # does not read CURL_CA_BUNDLE), and a loopback STS endpoint is never reached through the environment's
        # proxy. The endpoint is the one botocore resolved (the step's, else its variables, unless
        # AWS_IGNORE_CONFIGURED_ENDPOINT_URLS): only for a loopback one is the client made again without proxies.
        bundle = ca_bundle()
        verify = bundle if isinstance(bundle, str) else None  # None: botocore's own default (verified)

        def create(service: str, **kwargs: Any) -> Any:
            config = base.merge(kwargs.pop("config")) if kwargs.get("config") is not None else base
            kwargs.pop("config", None)
            client = session.create_client(service, region_name=settings.region, verify=verify,
                                           endpoint_url=settings.sts_endpoint_url, config=config, **kwargs)
            if loopback_url(client.meta.endpoint_url) and config.proxies != {}:
                client = session.create_client(service, region_name=settings.region, verify=verify,
                                               endpoint_url=settings.sts_endpoint_url,
                                               config=config.merge(Config(proxies={})), **kwargs)
            return client

        return session, create

    def _workload(self, session: Any, create: Any) -> Any:
        from botocore.credentials import (
            AssumeRoleWithWebIdentityProvider,
            CredentialResolver,
            create_credential_resolver,
        )

        _register_workload_secrets()
        chain = create_credential_resolver(session, region_name=self.settings.region)
        web_identity = AssumeRoleWithWebIdentityProvider(load_config=lambda: session.full_config,
                                                         client_creator=create, profile_name="default",
                                                         cache=_NeverStore())
        resolver = CredentialResolver([web_identity, chain.get_provider("container-role"),
                                       chain.get_provider("iam-role")])
        found = resolver.load_credentials()
        if found is None:
            busy = _imds_busy(chain.get_provider("iam-role"))
            if busy is not None:
                raise MeteringError(
                    "InstanceMetadataServiceBusy", f"the EC2 instance metadata service {busy}: the instance "
                    "role could not be read", operation="credentials",
                    classification=ErrorClass(True, TRANSIENT, "retried, then rebounded"))
            raise MeteringError(
                NO_WORKLOAD_IDENTITY,
                "no workload identity in this container: neither AWS_WEB_IDENTITY_TOKEN_FILE with AWS_ROLE_ARN "
                "(EKS IRSA), nor AWS_CONTAINER_CREDENTIALS_RELATIVE_URI/FULL_URI (ECS task role), nor an EC2 "
                "instance role (IMDS) was found", operation="credentials",
                classification=ErrorClass(False, CREDENTIALS, "run the step where the workload has an IAM role, "
                                          "or choose Access keys / Assume role from access keys"))
        return found

    def _resolve(self) -> Any:
        from botocore.credentials import (
            AssumeRoleCredentialFetcher,
            Credentials,
            DeferredRefreshableCredentials,
        )

        settings = self.settings
        _quiet_botocore(settings.secrets)
        session, create = self._client_creator()
        if settings.auth_mode == WORKLOAD:
            return self._workload(session, create)
        if settings.role_source == WORKLOAD:
            source: Any = _Registering(self._workload(session, create))
        else:
            source = Credentials(settings.access_key_id, settings.secret_access_key, settings.session_token)
        extra: dict[str, Any] = {"RoleSessionName": settings.role_session_name or DEFAULT_SESSION_NAME}
        if settings.external_id:
            extra["ExternalId"] = settings.external_id
        if settings.session_duration:
            extra["DurationSeconds"] = settings.session_duration
        fetcher = AssumeRoleCredentialFetcher(create, source, settings.role_arn or "", extra_args=extra,
                                              cache=_NeverStore())
        return DeferredRefreshableCredentials(refresh_using=fetcher.fetch_credentials, method="assume-role")


_SOURCES: OrderedDict[str, RoleCredentials] = OrderedDict()
_SOURCES_LOCK = threading.Lock()


def role_credentials(settings: Settings) -> RoleCredentials | None:
    """The cached temporary credentials of ``settings`` (None for the access-key mode)."""
    if settings.auth_mode == ACCESS_KEYS:
        return None
    key = settings.credential_key
    with _SOURCES_LOCK:
        found = _SOURCES.get(key)
        if found is None:
            found = _SOURCES[key] = RoleCredentials(settings)
            while len(_SOURCES) > _MAX_SOURCES:
                _SOURCES.popitem(last=False)
        _SOURCES.move_to_end(key)
        return found


def clear_cache() -> None:
    """Forget every cached credential and the clients holding them (tests that change the container's
    environment between cases; a real container's identity does not change while it runs)."""
    from . import client

    with _SOURCES_LOCK:
        _SOURCES.clear()
    with client._CLIENTS_LOCK:
        while client._CLIENTS:
            client._CLIENTS.popitem()[1].close()
