"""The step document, the component function's module and the module hooks around message processing.

Node 2.7.8: ``lib/sailor.js`` ``prepare`` (step document and module), ``startup``/``runHookInit``
(``startup`` with ``ELASTICIO_STARTUP_REQUIRED``, its result stored by ``lib/hooksData.js``, then
``init``) and ``runHookShutdown`` (``ELASTICIO_HOOK_SHUTDOWN`` mode: no AMQP at all); see
docs/platform-contract.md §3.2 and §7.4.
"""

from __future__ import annotations

import logging
import signal
import threading
from dataclasses import dataclass
from types import FrameType, ModuleType
from typing import Any

from .api import ApiClient, ApiError
from .component import ComponentReader, component_root
from .executor import call_hook, deep_copy
from .logs import REDACTOR
from .settings import Settings

log = logging.getLogger("sailor")


@dataclass
class LoadedStep:
    """The step document's parts a sailor uses and the imported function module."""

    document: dict[str, Any]
    cfg: dict[str, Any]
    reader: ComponentReader
    module: ModuleType


def api_client(settings: Settings) -> ApiClient:
    """The platform API client of step documents and ``updateKeys``."""
    return ApiClient(settings.API_URI, settings.API_USERNAME, settings.API_KEY)


def hooks_client(settings: Settings) -> ApiClient:
    """The client of the hooks-data calls (``API_REQUEST_RETRY_ATTEMPTS``/``_DELAY``, as Node's hooksData.js)."""
    return ApiClient(settings.API_URI, settings.API_USERNAME, settings.API_KEY,
                     attempts=settings.API_REQUEST_RETRY_ATTEMPTS,
                     delay_s=settings.API_REQUEST_RETRY_DELAY / 1000.0)


def startup_data_path(settings: Settings) -> str:
    return f"/sailor-support/hooks/task/{settings.FLOW_ID}/startup/data"


def load_step(settings: Settings, api: ApiClient) -> LoadedStep:
    """GET the step document (its cfg joins the redaction filter), load component.json and the function."""
    document = api.get_step(settings.FLOW_ID, settings.STEP_ID)
    cfg = document.get("config") or {}
    REDACTOR.add_config(cfg)
    reader = ComponentReader(component_root(settings.COMPONENT_PATH))
    return LoadedStep(document, cfg, reader, reader.load(settings.FUNCTION))


def run_start_hooks(settings: Settings, module: ModuleType, cfg: dict[str, Any]) -> None:
    """``startup`` (with ELASTICIO_STARTUP_REQUIRED, result stored in the platform), then ``init``."""
    if settings.STARTUP_REQUIRED:
        _, result = call_hook(module, "startup", deep_copy(cfg))
        store_startup_data(settings, result)
    found, _ = call_hook(module, "init", deep_copy(cfg))
    if not found:
        log.debug("init hook not defined")


def store_startup_data(settings: Settings, result: Any) -> None:
    """POST the startup hook's result to the platform; on 409 DELETE and POST again (Node's sequence)."""
    client = hooks_client(settings)
    path = startup_data_path(settings)
    # Node stores ``_.isEmpty(result) ? {} : result``: lodash's isEmpty is true for null, an empty string,
    # list or object, and for every number and boolean (so 5 and true are stored as {}, as in Node)
    state = result if isinstance(result, (str, list, tuple, dict)) and result else {}
    try:
        client.request("POST", path, state)
    except ApiError as exc:
        if exc.status != 409:
            raise
        log.warning("Startup data already exists. Rewriting.")
        client.request("DELETE", path)
        client.request("POST", path, state)


def _ignore_signal(signum: int, _frame: FrameType | None) -> None:
    log.info("Received signal; the shutdown hook runs to its end", extra={"signal": signum})


def run_shutdown_hook(settings: Settings) -> int:
    """ELASTICIO_HOOK_SHUTDOWN mode: no AMQP; GET startup data → shutdown(cfg, data) → DELETE.

    SIGTERM and SIGINT are logged and ignored meanwhile, as in Node (its graceful shutdown has nothing to
    disconnect in this mode): the platform stopping the step must not cut the component's clean-up short,
    nor leave the startup data undeleted."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _ignore_signal)
        signal.signal(signal.SIGINT, _ignore_signal)
    hooks = hooks_client(settings)
    try:
        step = load_step(settings, api_client(settings))
        path = startup_data_path(settings)
        _, data = hooks.request("GET", path)
        call_hook(step.module, "shutdown", deep_copy(step.cfg), data)
        hooks.request("DELETE", path)
    except Exception as exc:
        log.critical("Shutdown hook failed", exc_info=exc)
        return 1
    return 0
