"""The few platform API calls a sailor makes (basic auth, JSON, bounded retries on 5xx/network errors)."""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any


class ApiError(Exception):
    """A platform API call failed; carries the HTTP status when there was one (never credentials)."""

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
                with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                    raw = resp.read()
                    return resp.status, (json.loads(raw) if raw.strip() else None)
            except urllib.error.HTTPError as exc:
                text = exc.read().decode("utf-8", "replace")[:500]
                err = ApiError(f"{method} {path} answered {exc.code}: {text}", exc.code)
                if exc.code < 500:
                    raise err from None
                last = err
            except (urllib.error.URLError, OSError, ValueError) as exc:
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
        """``PUT /v1/accounts/{id}`` with ``{"keys": keys}`` (the ``updateKeys`` event)."""
        self.request("PUT", f"/v1/accounts/{urllib.parse.quote(str(account_id))}", {"keys": keys})
