"""The few platform API calls a sailor makes (basic auth, JSON, bounded retries on 5xx/network errors).

Also the redirect policy of every HTTP request the sailor makes with credentials (this client,
``service.post_result``, ``objectstorage``): urllib's default handler would re-send the
``Authorization`` header to whatever host a ``Location`` names. Node 2.7.8 (axios 1.x with
follow-redirects) follows platform-API redirects but keeps the credentials only on a same-origin
redirect, and its object-storage client (maester-client: ``maxRedirects: 0``) follows none. Here a
same-origin redirect (same scheme, host and port) is followed with the header, and a redirect to another
origin is refused (:class:`RedirectRefused`): a request that needs the credentials would fail there
anyway, and the request body (``updateKeys`` keys, a service result) never goes to another host.
"""

from __future__ import annotations

import base64
import http.client
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import IO, Any

DEFAULT_PORTS = {"http": 80, "https": 443}


class RedirectRefused(Exception):
    """A redirect answer the client did not follow (the text names the status, never the target URL)."""

    def __init__(self, code: int, cross_origin: bool) -> None:
        super().__init__("redirect to another origin refused" if cross_origin else "redirect refused")
        self.code = code


def origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) of ``url``, the port defaulted by scheme (userinfo ignored)."""
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = -1  # never equal to a valid origin's port
    return scheme, (parts.hostname or "").lower(), port or DEFAULT_PORTS.get(scheme)


def same_site(url: str, new_url: str) -> bool:
    """Whether a redirect from ``url`` to ``new_url`` may keep the credentials: the same origin, or the same
    host and port upgraded from http to https (80 becoming 443 included: a load balancer forcing HTTPS;
    Node's follow-redirects keeps the header then too). Never towards another host or port, nor down from
    https to http."""
    old, new = origin(url), origin(new_url)
    upgraded_port = new[2] == old[2] or (old[2] == DEFAULT_PORTS["http"] and new[2] == DEFAULT_PORTS["https"])
    return new == old or (old[0] == "http" and new[0] == "https" and new[1] == old[1] and upgraded_port)


class _RedirectPolicy(urllib.request.HTTPRedirectHandler):
    """Follow same-origin redirects and http→https upgrades of the same host (urllib's rules, headers
    kept) or none; refuse the others."""

    def __init__(self, same_origin: bool) -> None:
        self.same_origin = same_origin

    def redirect_request(
        self, req: urllib.request.Request, fp: IO[bytes], code: int, msg: str,
        headers: http.client.HTTPMessage, newurl: str,
    ) -> urllib.request.Request | None:
        if not self.same_origin or not same_site(req.full_url, newurl):
            fp.close()
            raise RedirectRefused(code, cross_origin=self.same_origin)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


SAME_ORIGIN_REDIRECTS = urllib.request.build_opener(_RedirectPolicy(same_origin=True))
"""Opener for the platform API and the service result: same-origin redirects only (see module text)."""
NO_REDIRECTS = urllib.request.build_opener(_RedirectPolicy(same_origin=False))
"""Opener for object storage: no redirect followed (maester-client's ``maxRedirects: 0``)."""

TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (
    urllib.error.URLError, OSError, ValueError, http.client.HTTPException,
)
"""What a request (sending it or reading its answer) raises when the connection or the answer is bad:
refused, reset, timed out, a truncated body (``IncompleteRead``), a garbled status line."""


def error_text(exc: urllib.error.HTTPError, limit: int) -> str:
    """The first ``limit`` characters of an error answer's body, registered secrets masked before the cut
    ('' when it cannot be read)."""
    from .logs import clip  # logs imports nothing of the API client; imported here to keep api.py standalone

    try:
        return clip(exc.read(limit + 4096).decode("utf-8", "replace").strip(), limit)
    except Exception:  # noqa: BLE001 - a body that cannot be read does not hide the status
        return ""


class ApiError(Exception):
    """A platform API call failed; carries the HTTP status when there was one (never credentials)."""

    name = "Error"  # its error event's ``name`` (a start-up error), as Node's plain ``Error``

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ApiClient:
    """Minimal client of the platform API used at start-up, by hooks and by ``updateKeys``."""

    def __init__(
        self, base_uri: str, username: str, key: str, *, attempts: int = 3, delay_s: float = 1.0,
        timeout_s: float = 15.0,
    ) -> None:
        self.base = base_uri.rstrip("/")
        token = base64.b64encode(f"{username}:{key}".encode()).decode("ascii")
        self._auth = "Basic " + token
        self.attempts = max(1, int(attempts))
        self.delay_s = delay_s
        self.timeout_s = timeout_s

    def request(
        self, method: str, path: str, body: Any = None, *, attempts: int | None = None,
        delay_s: float | None = None,
    ) -> tuple[int, Any]:
        """Send one JSON request with retries on network errors and 5xx; raise ApiError on 4xx/exhaustion."""
        data = None if body is None else json.dumps(body, separators=(",", ":")).encode("utf-8")
        tries = attempts or self.attempts
        wait = self.delay_s if delay_s is None else delay_s
        last: ApiError | None = None
        for attempt in range(tries):
            if attempt:
                time.sleep(wait)
            req = urllib.request.Request(self.base + path, data=data, method=method)
            req.add_header("Authorization", self._auth)
            req.add_header("Connection", "Keep-Alive")
            req.add_header("Accept", "application/json")
            if data is not None:
                req.add_header("Content-Type", "application/json")
            try:
                with SAME_ORIGIN_REDIRECTS.open(req, timeout=self.timeout_s) as resp:
                    raw = resp.read()
                    return resp.status, (json.loads(raw) if raw.strip() else None)
            except RedirectRefused as exc:
                raise ApiError(f"{method} {path} answered {exc.code}: {exc}", exc.code) from None
            except urllib.error.HTTPError as exc:
                err = ApiError(f"{method} {path} answered {exc.code}: {error_text(exc, 500)}", exc.code)
                if exc.code < 500:
                    raise err from None
                last = err
            except TRANSPORT_ERRORS as exc:
                last = ApiError(f"{method} {path} failed: {type(exc).__name__}: {getattr(exc, 'reason', exc)}")
        assert last is not None
        raise last

    def get_step(self, flow_id: str, step_id: str) -> dict[str, Any]:
        """The step document (config, snapshot, is_passthrough, variables)."""
        path = f"/v1/tasks/{urllib.parse.quote(flow_id)}/steps/{urllib.parse.quote(step_id)}"
        _, doc = self.request("GET", path)
        if not isinstance(doc, dict):
            raise ApiError(f"GET {path} did not return a JSON object")
        return doc

    def update_keys(self, account_id: str, keys: Any) -> None:
        """``PUT /v1/accounts/{id}`` with ``{"keys": keys}`` (the ``updateKeys`` event). Without an account id
        (no ``cfg._account``) nothing is sent, as Node's REST client refuses the path ("Missing value for
        parameter '{id}'"): the keys, secrets, must not go to the accounts collection."""
        if account_id is None or str(account_id) == "":
            raise ApiError("Missing value for parameter '{id}': the step's cfg has no _account")
        self.request("PUT", f"/v1/accounts/{urllib.parse.quote(str(account_id))}", {"keys": keys})
