"""Lightweight messages: message bodies kept in the platform's object storage ("maester").

Behaviour of the Node sailor 2.7.8 (``lib/sailor.js``: ``fetchMessageBody``, ``uploadMessageBody``,
``onData``, ``processMessage``) and of the client it uses, ``@elastic.io/maester-client`` 6.0.0
(``dist/src/StorageClient.js`` ``requestRetry``/``formHeaders``, ``dist/src/utils.js``
``validateAndGetRetryOptions``/``exponentialDelay``, ``dist/src/interfaces.js``):

* a message (or passthrough entry) whose JSON ``headers`` carry ``x-ipaas-object-storage-id`` has its
  ``body`` in object storage: ``GET {OBJECT_STORAGE_URI}/objects/{id}``;
* stored objects are the raw AES-256-CBC ciphertext (the message key and IV, no base64, whatever the
  ``PROTOCOL_VERSION``) of the compact JSON of the body; uploads are ``POST {URI}/objects`` answered
  with ``{"objectId": …}``;
* every request carries ``Authorization: Bearer {OBJECT_STORAGE_TOKEN}`` and
  ``x-request-id: f:{FLOW_ID};s:{STEP_ID};m:`` (the sailor gives the client no message id);
* network errors and 5xx answers are retried ``REQUEST_MAX_RETRY`` times (0..4, default 2; ``0`` and
  out-of-range values mean the default, as ``validateAndGetRetryOptions`` reads them) after
  ``100·2^n`` ms plus 0–20 % jitter (at most 15 s); a 4xx answer fails at once; each request times
  out after ``REQUEST_TIMEOUT`` ms (500..20000, default 10000). "Network errors" are every failure of
  the transport, the answer's body included (a connection closed before ``Content-Length`` bytes came:
  ``http.client.IncompleteRead``; a garbled status line): whatever goes wrong, the caller gets an
  :class:`ObjectStorageError` once the retries are spent;
* redirects are not followed (maester-client's ``maxRedirects: 0``): a 3xx answer fails at once, as a
  4xx does, and the bearer token never goes to the host a ``Location`` names.

Only the standard library is used (``urllib``, already imported by the platform API client), and
nothing here runs for a message without the header when lightweight output is off.
"""

from __future__ import annotations

import logging
import random
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

from .api import NO_REDIRECTS, TRANSPORT_ERRORS, RedirectRefused, error_text
from .crypto import DecryptError, MessageCipher, dumps, loads
from .logs import clip

log = logging.getLogger("sailor")

OBJECT_ID_HEADER = "x-ipaas-object-storage-id"

RETRIES_DEFAULT, RETRIES_MIN, RETRIES_MAX = 2, 0, 4
TIMEOUT_MS_DEFAULT, TIMEOUT_MS_MIN, TIMEOUT_MS_MAX = 10000, 500, 20000
MAX_BACKOFF_MS = 15000
USER_AGENT = "elasticio-sailor-py"


class ObjectStorageError(Exception):
    """An object-storage request failed (the text names the request and the cause, never the token)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def _js_parse_int(raw: str | None) -> int | None:
    """``parseInt(raw, 10)`` for the two environment variables (None for NaN)."""
    if not raw:
        return None
    text = raw.strip()
    sign = -1 if text[:1] == "-" else 1
    text = text.lstrip("+-")
    digits = ""
    for ch in text:
        if not ch.isdigit():
            break
        digits += ch
    return sign * int(digits) if digits else None


def retry_options(env: Mapping[str, str]) -> tuple[int, int]:
    """(retries, timeout ms) from ``REQUEST_MAX_RETRY`` / ``REQUEST_TIMEOUT`` like maester-client."""
    retries = _js_parse_int(env.get("REQUEST_MAX_RETRY")) or RETRIES_DEFAULT
    if not RETRIES_MIN <= retries <= RETRIES_MAX:
        retries = RETRIES_DEFAULT
    timeout = _js_parse_int(env.get("REQUEST_TIMEOUT")) or TIMEOUT_MS_DEFAULT
    if not TIMEOUT_MS_MIN <= timeout <= TIMEOUT_MS_MAX:
        timeout = TIMEOUT_MS_DEFAULT
    return retries, timeout


def backoff_ms(retry: int, rand: Callable[[], float] = random.random) -> float:
    """``exponentialDelay``: 100·2^retry ms plus 0–20 % jitter, at most 15 s."""
    delay = (2**retry) * 100
    return min(delay + delay * 0.2 * rand(), MAX_BACKOFF_MS)


def objects_url(base_uri: str) -> str:
    """``{base}/objects`` for a base with or without a path prefix and trailing slash (axios joins so)."""
    return base_uri.rstrip("/") + "/objects"


class ObjectStorage:
    """The object-storage client of one sailor process (thread-safe: no shared mutable state)."""

    def __init__(
        self,
        base_uri: str | None,
        token: str | None,
        cipher: MessageCipher,
        *,
        flow_id: str = "",
        step_id: str = "",
        retries: int = RETRIES_DEFAULT,
        timeout_ms: int = TIMEOUT_MS_DEFAULT,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base = base_uri or ""
        # a token mounted from a file often ends in a line break: no header value may hold one
        self._token = (token or "").strip()
        self.cipher = cipher
        self.request_id = f"f:{flow_id};s:{step_id};m:"
        self.retries = retries
        self.timeout_s = timeout_ms / 1000.0
        self._sleep = sleep

    # ------------------------------------------------------------------ public
    def get(self, object_id: str) -> Any:
        """The body stored as ``object_id``: fetched, decrypted, parsed."""
        raw = self._request("GET", f"/{urllib.parse.quote(str(object_id), safe='')}", None)
        try:
            return loads(self.cipher.decrypt_bytes(raw))
        except DecryptError as exc:
            raise ObjectStorageError(f"object {object_id} cannot be decrypted: {exc}") from None
        except ValueError:
            raise ObjectStorageError(f"object {object_id} is not JSON once decrypted") from None

    def add(self, body: Any) -> str:
        """Store ``body`` (its compact JSON, encrypted); return the new object id."""
        return self.add_json(dumps(body))

    def add_json(self, plain: bytes) -> str:
        """Store already serialised JSON ``plain`` (encrypted); return the new object id."""
        answer = self._request("POST", "", self.cipher.encrypt_bytes(plain))
        try:
            object_id = loads(answer).get("objectId")
        except (ValueError, AttributeError):
            object_id = None
        if not isinstance(object_id, str) or not object_id:
            raise ObjectStorageError("POST /objects answered without an objectId")
        return object_id

    # ------------------------------------------------------------------ transport
    def _request(self, method: str, path: str, data: bytes | None) -> bytes:
        what = f"{method} /objects{path}"
        if not self.base:
            raise ObjectStorageError(f"{what}: ELASTICIO_OBJECT_STORAGE_URI is not set")
        url = objects_url(self.base) + path
        last: ObjectStorageError | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                log.warning("Error during object request, retrying (%d)", attempt,
                            extra={"reason": clip(last, 300)})
                self._sleep(backoff_ms(attempt - 1) / 1000.0)
            req = urllib.request.Request(url, data=data, method=method)
            req.add_header("Authorization", "Bearer " + self._token)
            req.add_header("User-Agent", USER_AGENT)
            req.add_header("x-request-id", self.request_id)
            if data is not None:
                req.add_header("Content-Type", "application/json")
            try:
                with NO_REDIRECTS.open(req, timeout=self.timeout_s) as resp:
                    return bytes(resp.read())
            except RedirectRefused as exc:
                raise ObjectStorageError(f"{what} answered {exc.code}: {exc}", exc.code) from None
            except urllib.error.HTTPError as exc:
                text = error_text(exc, 300)
                err = ObjectStorageError(f"{what} answered {exc.code}" + (f": {text}" if text else ""),
                                         exc.code)
                if exc.code < 500:
                    raise err from None
                last = err
            except TRANSPORT_ERRORS as exc:
                reason = getattr(exc, "reason", None) or exc
                last = ObjectStorageError(f"{what} failed: {type(exc).__name__}: {reason}")
            except Exception as exc:  # noqa: BLE001 - any other failure of the transport: still retried
                last = ObjectStorageError(f"{what} failed: {type(exc).__name__}: {exc}")
        assert last is not None
        raise last


def storage_from_settings(values: Mapping[str, Any], cipher: MessageCipher,
                          env: Mapping[str, str]) -> ObjectStorage:
    """The client configured by ``ELASTICIO_OBJECT_STORAGE_*`` and ``REQUEST_MAX_RETRY``/``_TIMEOUT``."""
    retries, timeout_ms = retry_options(env)
    return ObjectStorage(values.get("OBJECT_STORAGE_URI"), values.get("OBJECT_STORAGE_TOKEN"), cipher,
                         flow_id=str(values.get("FLOW_ID") or ""), step_id=str(values.get("STEP_ID") or ""),
                         retries=retries, timeout_ms=timeout_ms)


# ---------------------------------------------------------------------- message level


def reference(entry: Any) -> str | None:
    """The object id in a message's (or passthrough entry's) JSON headers, if any."""
    if isinstance(entry, dict):
        headers = entry.get("headers")
        if isinstance(headers, dict):
            object_id = headers.get(OBJECT_ID_HEADER)
            if object_id:
                return str(object_id)
    return None


def has_references(msg: dict[str, Any]) -> bool:
    """Does ``msg`` or any of its passthrough entries point at object storage? (cheap, per message)"""
    headers = msg.get("headers")
    if isinstance(headers, dict) and headers.get(OBJECT_ID_HEADER):
        return True
    passthrough = msg.get("passthrough")
    if isinstance(passthrough, dict):
        for entry in passthrough.values():
            if reference(entry):
                return True
    return False


class FetchError(Exception):
    """A referenced body could not be fetched: Node's ``Failed to get message body with id=<id>``."""

    name = "Error"  # the error message's ``name``, as Node's plain ``Error``

    def __init__(self, object_id: str, cause: BaseException) -> None:
        super().__init__(f"Failed to get message body with id={object_id}")
        self.object_id = object_id
        self.cause = cause


def fetch_body(storage: ObjectStorage, entry: dict[str, Any]) -> Any:
    """The referenced body of ``entry`` (its own ``body`` if it has no reference)."""
    object_id = reference(entry)
    if object_id is None:
        return entry.get("body")
    log.info("Object id header found, message is lightweight; fetching its body",
             extra={"objectId": object_id})
    try:
        body = storage.get(object_id)
    except ObjectStorageError as exc:
        log.error("Could not fetch a message body from object storage",
                  extra={"objectId": object_id, "reason": clip(exc, 300)})
        raise FetchError(object_id, exc) from None
    log.info("Successfully obtained message body", extra={"objectId": object_id})
    return body


def resolve_incoming(storage: ObjectStorage, msg: dict[str, Any]) -> None:
    """``processMessage`` with ``autoResolveObjectReferences``: replace every referenced body in place
    (the message's and each passthrough entry's; the header stays)."""
    if reference(msg):
        msg["body"] = fetch_body(storage, msg)
    passthrough = msg.get("passthrough")
    if isinstance(passthrough, dict):
        for step_id, entry in list(passthrough.items()):
            if reference(entry):
                passthrough[step_id] = {**entry, "body": fetch_body(storage, entry)}


class UploadError(Exception):
    """Node's ``Lightweight message/passthrough body upload error``."""

    name = "Error"

    def __init__(self) -> None:
        super().__init__("Lightweight message/passthrough body upload error")


def _is_empty(value: Any) -> bool:
    """lodash ``_.isEmpty`` for JSON values: no own keys/items, and any number, boolean or null."""
    if isinstance(value, (dict, list, str)):
        return len(value) == 0
    return True


def lighten(storage: ObjectStorage, data: dict[str, Any], passthrough: dict[str, Any],
            threshold: int) -> dict[str, Any]:
    """``onData`` with ``EMIT_LIGHTWEIGHT_MESSAGE``: above ``threshold`` bytes of compact JSON (body plus
    every passthrough body) upload the body and each passthrough body without an object id.

    ``data`` is changed in place (``body`` → ``{}``, header added); returns the passthrough entries
    that were replaced by references (step id → new entry), for the caller to keep.
    """
    body_json = dumps(data.get("body"))
    pt_json = {step_id: dumps(entry.get("body") if isinstance(entry, dict) else None)
               for step_id, entry in passthrough.items()}
    total = len(body_json) + sum(len(b) for b in pt_json.values())
    if total <= threshold:
        log.debug("Message size is below threshold", extra={"totalLength": total, "threshold": threshold})
        return {}
    log.info("Message size is above threshold, going to upload",
             extra={"totalLength": total, "OBJECT_STORAGE_SIZE_THRESHOLD": threshold})
    try:
        body_id = storage.add_json(body_json)
        replaced: dict[str, Any] = {}
        for step_id, entry in passthrough.items():
            entry = entry if isinstance(entry, dict) else {}
            entry_id = reference(entry) or storage.add_json(pt_json[step_id])
            replaced[step_id] = {**entry, "body": {},
                                 "headers": {**(entry.get("headers") or {}), OBJECT_ID_HEADER: entry_id}}
    except ObjectStorageError as exc:
        log.error("Error during message/passthrough body upload", extra={"reason": clip(exc, 300)})
        raise UploadError() from None
    log.info("Message body uploaded", extra={"objectId": body_id})
    data["body"] = {}
    data["headers"] = {**(data.get("headers") or {}), OBJECT_ID_HEADER: body_id}
    return replaced


def resolve_passthrough(storage: ObjectStorage, passthrough: dict[str, Any]) -> dict[str, Any]:
    """``onData`` without lightweight output: download passthrough bodies that are still references
    (an empty body with the header). Returns step id → resolved entry."""
    resolved: dict[str, Any] = {}
    for step_id, entry in passthrough.items():
        if reference(entry) and _is_empty(entry.get("body")):
            resolved[step_id] = {**entry, "body": fetch_body(storage, entry)}
    return resolved
