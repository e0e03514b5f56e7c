"""In-process use: ``EmulatorServer`` (a background-thread emulator) and ``AdminClient`` (the admin API)."""

from __future__ import annotations

import json
import re
import threading
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

from .clock import parse_clock
from .faults import Fault, parse_spec
from .fixtures import DEFAULT_FIXTURES, load_fixtures
from .server import EmulatorHTTPServer
from .state import Config, State

__all__ = ["DEFAULT_FIXTURES", "AdminClient", "AdminError", "EmulatorServer"]


class AdminError(RuntimeError):
    """An admin API call answered with an error status; ``body`` holds the AWS-style error."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"admin API error {status}: {body}")
        self.status = status
        self.body = body


def _camel(name: str) -> str:
    return re.sub(r"_([a-z])", lambda m: m.group(1).upper(), name)


class AdminClient:
    """A small client of ``/_emulator/``; keyword arguments may be snake_case or camelCase."""

    def __init__(self, base_url: str, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def call(self, method: str, name: str, body: Any = None, query: str = "") -> Any:
        """One admin request; returns the decoded JSON reply or raises AdminError."""
        data = None if body is None else json.dumps(body).encode("utf-8")
        url = f"{self.base_url}/_emulator/{name}" + (f"?{query}" if query else "")
        req = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                parsed: Any = json.loads(raw)
            except ValueError:
                parsed = raw.decode("utf-8", "replace")
            raise AdminError(exc.code, parsed) from None

    def health(self) -> dict[str, Any]:
        """``GET health``."""
        return dict(self.call("GET", "health"))

    def records(self, **filters: str) -> dict[str, Any]:
        """``GET records``: ``{"records": [...], "summary": [...]}``; filters are query parameters."""
        query = "&".join(f"{_camel(k)}={quote(v)}" for k, v in filters.items())
        return dict(self.call("GET", "records", query=query))

    def stats(self) -> dict[str, Any]:
        """``GET stats``: ``{"operations": {name: {calls, succeeded, throttled, errors}}}``."""
        return dict(self.call("GET", "stats"))

    def faults(self) -> list[dict[str, Any]]:
        """``GET faults``: the armed faults."""
        return list(self.call("GET", "faults")["faults"])

    def add_fault(self, **spec: Any) -> dict[str, Any]:
        """``POST faults``, e.g. ``add_fault(type="throttle", count=2, operations=["MeterUsage"])``."""
        return dict(self.call("POST", "faults", {_camel(k): v for k, v in spec.items()}))

    def clear_faults(self) -> None:
        """``DELETE faults``."""
        self.call("DELETE", "faults")

    def reset(self) -> None:
        """``POST reset``: start-up fixtures, config and faults; no records, tokens or statistics."""
        self.call("POST", "reset")

    def mint_token(self, product_code: str, customer: dict[str, Any], token: str | None = None) -> str:
        """``POST registration-tokens``; returns the token string."""
        body: dict[str, Any] = {"productCode": product_code, "customer": customer}
        if token is not None:
            body["token"] = token
        return str(self.call("POST", "registration-tokens", body)["token"])

    def fixtures(self) -> dict[str, Any]:
        """``GET fixtures`` (secrets shown as ``***``)."""
        return dict(self.call("GET", "fixtures"))

    def load_fixtures(self, obj: dict[str, Any]) -> dict[str, Any]:
        """``POST fixtures``: replace the fixtures (records and tokens are cleared)."""
        return dict(self.call("POST", "fixtures", obj))

    def config(self) -> dict[str, Any]:
        """``GET config``."""
        return dict(self.call("GET", "config"))

    def set_config(self, **changes: Any) -> dict[str, Any]:
        """``POST config``; returns the whole config after the change."""
        return dict(self.call("POST", "config", {_camel(k): v for k, v in changes.items()}))

    def clock(self) -> dict[str, Any]:
        """``GET clock``: ``{"mode", "now", "iso", "emulatorNow", "offsetSeconds", "frozen"?}``."""
        return dict(self.call("GET", "clock"))

    def set_clock(self, now: str | float | None = None, *, frozen: bool = False,
                  offset_seconds: float | None = None) -> dict[str, Any]:
        """``POST clock``: stand the usage clock at ``now`` (ISO 8601 UTC text or epoch seconds; it runs on
        from there unless ``frozen``), or at ``offset_seconds`` from the emulator clock."""
        if (now is None) == (offset_seconds is None):
            raise ValueError("give exactly one of now and offset_seconds")
        body: dict[str, Any] = {"now": now, "frozen": frozen} if now is not None else {"offsetSeconds": offset_seconds}
        return dict(self.call("POST", "clock", body))

    def real_clock(self) -> dict[str, Any]:
        """``POST clock {"real": true}``: back to the emulator clock."""
        return dict(self.call("POST", "clock", {"real": True}))

    def public_key(self) -> str:
        """``GET public-key``: the PEM of the key that signs RegisterUsage JWTs."""
        return str(self.call("GET", "public-key")["pem"])


class EmulatorServer:
    """The emulator on a free loopback port in a background thread.

    ``options``: ``host``, ``port`` (0 = free port), ``seed`` (fault randomness), ``faults`` (list of fault
    specs), ``clock`` (a start-up usage clock: the body of ``POST /_emulator/clock``, e.g.
    ``{"now": "2026-12-01T05:59:00Z"}``) and any config setting in snake_case (``region``,
    ``batch_meter_usage_window_hours``, ``meter_usage_window_hours``, ``echo``, ``token_lifetime_seconds``,
    ``clock_offset_seconds``, ``strict_customers``, ...).
    """

    def __init__(self, fixtures: str | Path | dict[str, Any] | None = None, quotas: bool = True,
                 **options: Any) -> None:
        self.host: str = options.pop("host", "127.0.0.1")
        port: int = options.pop("port", 0)
        seed: int | None = options.pop("seed", None)
        fault_specs: list[dict[str, Any]] = options.pop("faults", [])
        clock_spec: dict[str, Any] | None = options.pop("clock", None)
        config = Config()
        config.update({"quotas": quotas, **options})
        faults: list[Fault] = [parse_spec(spec, i) for i, spec in enumerate(fault_specs, start=1)]
        clock = parse_clock(clock_spec) if clock_spec is not None else None
        self.state = State(load_fixtures(fixtures), config, faults, seed, clock)
        self._httpd = EmulatorHTTPServer((self.host, port), self.state)
        self.port: int = self._httpd.server_address[1]
        self.url = f"http://{self.host}:{self.port}"
        self.admin = AdminClient(self.url)
        self._thread: threading.Thread | None = None

    def start(self) -> Self:
        """Serve in a daemon thread (idempotent)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.2},
                                            name=f"metering-emulator:{self.port}", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket."""
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=10)
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
