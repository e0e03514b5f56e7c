"""Service mode: ``service <verifyCredentials|getMetaModel|selectModel>``, result POSTed to the platform.

Body ``{"status": "success", "data": …}`` or ``{"status": "error", "data": {"message": …}}`` to
``ELASTICIO_POST_RESULT_URL`` (basic auth taken from its userinfo). Exit 0 once the platform answered 200,
1 without a result URL or when the POST is not answered 200.

The environment is read once into :class:`~.settings.ServiceSettings` (Node's ``lib/service.js``
``processService``; docs/platform-contract.md §2.3, §7.6).

Deliberate difference from Node: a verifier returning plain ``False`` reports ``{"verified": false}``
(Node reports it as verified).
"""

from __future__ import annotations

import base64
import inspect
import json
import logging
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

from .api import SAME_ORIGIN_REDIRECTS, TRANSPORT_ERRORS, ApiClient, RedirectRefused
from .component import ComponentReader, component_root
from .executor import ContextLogger, awaited
from .logs import REDACTOR
from .messages import redacted
from .settings import ServiceSettings, load_service_settings

log = logging.getLogger("sailor")

METHODS = ("verifyCredentials", "getMetaModel", "selectModel")


class ServiceError(Exception):
    """A problem reported to the platform as ``{"status": "error"}``."""


class ServiceContext:
    """The ``self`` of service functions: ``logger`` and ``emit('updateKeys', keys)``."""

    def __init__(self, api: ApiClient | None, cfg: Mapping[str, Any]) -> None:
        self._api = api
        self._cfg = cfg
        self.logger: logging.Logger = ContextLogger({})

    def emit(self, event: str, payload: Any = None) -> None:
        """Only ``updateKeys`` means something here; a failed update is logged, the result still sent."""
        if event != "updateKeys" or self._api is None:
            return
        REDACTOR.add_config(payload)
        try:
            self._api.update_keys(str(self._cfg.get("_account", "")), payload)
        except Exception as exc:  # noqa: BLE001 - Node returns the model even if the update failed
            log.error("Failed to update keys", extra={"reason": type(exc).__name__})


def _call(fn: Callable[..., Any], ctx: ServiceContext, cfg: dict[str, Any]) -> Any:
    """Call ``fn(cfg)`` or, when it takes two positional parameters, ``fn(self, cfg)``."""
    try:
        params = [
            p for p in inspect.signature(fn).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
        ]
    except (TypeError, ValueError):
        params = []
    return awaited(fn(ctx, cfg) if len(params) >= 2 else fn(cfg))


def verify_result(result: Any) -> dict[str, Any]:
    """Map a verifier's return value to the platform's ``{"verified", "reason"?}``.

    A returned reason has its secrets masked, as a raised one does (Node posts it as returned): a verifier that
    quotes the service's answer may quote the credentials it sent."""
    if isinstance(result, Mapping) and "verified" in result:
        posted = dict(result)
        if "reason" in posted:
            posted["reason"] = redacted(posted["reason"])  # text, or JSON: every string in it
        return posted
    if result is False:
        return {"verified": False}
    return {"verified": True}


def execute(method: str, settings: ServiceSettings | Mapping[str, str]) -> Any:
    """Run one service method; raise ServiceError/any exception for an error result."""
    if not isinstance(settings, ServiceSettings):
        settings = load_service_settings(settings)
    if method not in METHODS:
        raise ServiceError(f'Unknown service method "{method}"')
    for name in ("CFG", "API_URI", "API_USERNAME", "API_KEY"):
        if not getattr(settings, name):
            raise ServiceError(f"ELASTICIO_{name} is not provided")
    target = settings.ACTION_OR_TRIGGER
    if method in ("getMetaModel", "selectModel") and not target:
        raise ServiceError("ELASTICIO_ACTION_OR_TRIGGER is not provided")
    model_method = settings.GET_MODEL_METHOD
    if method == "selectModel" and not model_method:
        raise ServiceError("ELASTICIO_GET_MODEL_METHOD is not provided")
    try:
        cfg = json.loads(str(settings.CFG))
    except ValueError:
        raise ServiceError("Unable to parse CFG") from None
    REDACTOR.add_config(cfg)
    api = ApiClient(str(settings.API_URI), str(settings.API_USERNAME), str(settings.API_KEY))
    ctx = ServiceContext(api, cfg if isinstance(cfg, dict) else {})
    reader = ComponentReader(component_root(settings.COMPONENT_PATH))
    if method == "verifyCredentials":
        module = reader.load_verifier()
        if module is None:
            return {"verified": True}  # no verifier: every credential is accepted, as in Node
        verify = getattr(module, "verify", None)
        if not callable(verify):
            # a verifier module whose function has another name (Node's module exports the function itself)
            # must not accept every credential without a word
            raise ServiceError(f"The credentials verifier {getattr(module, '__file__', 'module')} defines no "
                               "verify(self, credentials) function")
        try:
            return verify_result(awaited(verify(ctx, cfg)))
        except Exception as exc:  # noqa: BLE001 - a raising verifier means "not verified, because …"
            # the exception's text, secrets masked (as every error text the sailor emits)
            return {"verified": False, "reason": REDACTOR.strict(str(exc))}
    assert target is not None
    module = reader.load(target)
    name = "getMetaModel" if method == "getMetaModel" else str(model_method)
    fn = getattr(module, name, None)
    if not callable(fn):
        raise ServiceError(f'Method "{name}" is not found in "{target}" action or trigger')
    return _call(fn, ctx, cfg)


def post_result(url: str, body: dict[str, Any], settings: ServiceSettings) -> int:
    """POST the result; return the final HTTP status (0 when the server could not be reached)."""
    parts = urllib.parse.urlsplit(url)
    headers = {"Content-Type": "application/json", "Connection": "Keep-Alive"}
    if parts.username is not None and parts.password is not None:
        user = urllib.parse.unquote(parts.username)
        password = urllib.parse.unquote(parts.password)
        headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        netloc = parts.hostname or ""
        if ":" in netloc:
            netloc = f"[{netloc}]"
        if parts.port:
            netloc += f":{parts.port}"
        url = urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    data = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    delay = settings.API_REQUEST_RETRY_DELAY / 1000.0
    status = 0
    for attempt in range(settings.API_REQUEST_RETRY_ATTEMPTS):
        if attempt:
            time.sleep(delay)
        req = urllib.request.Request(url, data=data, method="POST", headers=headers)
        try:
            with SAME_ORIGIN_REDIRECTS.open(req, timeout=15) as resp:
                return int(resp.status)
        except RedirectRefused as exc:  # never sends the basic auth to another origin (api.py)
            log.error("The result POST was redirected to another origin; redirect refused",
                      extra={"status": exc.code})
            return exc.code
        except urllib.error.HTTPError as exc:
            status = exc.code
            if exc.code < 500:
                return status
        except TRANSPORT_ERRORS:
            status = 0
    return status


def run_service(method: str, env: Mapping[str, str] | None = None) -> int:
    """Entry of ``python -m elasticio_sailor service <method>``; returns the exit code."""
    settings = load_service_settings(env)
    url = settings.POST_RESULT_URL
    if not url:
        log.critical("ELASTICIO_POST_RESULT_URL is not provided")
        return 1
    REDACTOR.add(settings.secrets())
    parts = urllib.parse.urlsplit(url)
    if parts.password:
        REDACTOR.add([parts.password, urllib.parse.unquote(parts.password)])
    try:
        body: dict[str, Any] = {"status": "success", "data": execute(method, settings)}
    except Exception as exc:  # noqa: BLE001 - every failure is reported to the platform
        log.error("Service method failed", extra={"method": method, "reason": type(exc).__name__})
        body = {"status": "error", "data": {"message": REDACTOR.strict(str(exc))}}
    status = post_result(url, body, settings)
    if status != 200:
        log.critical("Failed to POST the result", extra={"status": status})
        return 1
    return 0
