"""Flow-step mode: connect, fetch the step, load the component, run hooks, consume until SIGTERM.

The lifecycle of Node 2.7.8's ``run.js`` (``putOutToSea``, ``gracefulShutdown``) and ``lib/sailor.js``
(``connect``, ``prepare``, ``run``); docs/platform-contract.md §3. Each delivery is processed by
``execution.MessageExecution`` on the pool of ``SAILOR_CONCURRENCY`` (``pools.py``); the hooks and the
step document are ``hooks.py``.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import uuid
from types import FrameType

from .amqp import AmqpTransport, Delivery
from .component import ComponentError
from .crypto import MessageCipher
from .execution import StepRuntime, delivery_mode, error_envelope, publish_properties
from .hooks import api_client, load_step, run_shutdown_hook, run_start_hooks
from .logs import REDACTOR
from .messages import format_error
from .pools import Throttle, check_concurrency, make_pool
from .settings import Settings, SettingsError

log = logging.getLogger("sailor")


class FlowStep:
    """The long-running sailor of one flow step."""

    def __init__(self, settings: Settings, concurrency: str = "threads") -> None:
        check_concurrency(concurrency)
        self.concurrency = concurrency
        self.settings = settings
        self.amqp = settings.amqp()
        self.cipher = MessageCipher(self.amqp.MESSAGE_CRYPTO_PASSWORD, self.amqp.MESSAGE_CRYPTO_IV)
        self.api = api_client(settings)
        self.static_headers = {
            "execId": settings.EXEC_ID,
            "taskId": settings.FLOW_ID,
            "workspaceId": settings.WORKSPACE_ID,
            "containerId": settings.CONTAINER_ID,
            "userId": settings.USER_ID,
            "stepId": settings.STEP_ID,
            "compId": settings.COMP_ID,
            "function": settings.FUNCTION,
        }
        self.transport = AmqpTransport(
            self.amqp.AMQP_URI, prefetch=settings.RABBITMQ_PREFETCH_SAILOR, on_delivery=self._dispatch,
            reconnect_attempts=settings.AMQP_RECONNECT_ATTEMPTS, reconnect_timeout_ms=settings.AMQP_RECONNECT_TIMEOUT,
            publish_retry_delay_ms=settings.AMQP_PUBLISH_RETRY_DELAY,
            publish_max_retry_delay_ms=settings.AMQP_PUBLISH_MAX_RETRY_DELAY,
            publish_retry_attempts=settings.AMQP_PUBLISH_RETRY_ATTEMPTS,
        )
        self.pool = make_pool(concurrency, settings.RABBITMQ_PREFETCH_SAILOR, self.transport)
        interval = settings.RATE_INTERVAL
        self.throttles = {
            "data": Throttle(settings.DATA_RATE_LIMIT, interval, sleep=self.pool.sleep),
            "error": Throttle(settings.ERROR_RATE_LIMIT, interval, sleep=self.pool.sleep),
            "snapshot": Throttle(settings.SNAPSHOT_RATE_LIMIT, interval, sleep=self.pool.sleep),
        }
        self.runtime: StepRuntime | None = None  # once the step is loaded (``prepare``)
        self._stop = threading.Event()

    # ------------------------------------------------------------------ lifecycle
    def run(self) -> int:
        """Run until SIGTERM/SIGINT; return the process exit code."""
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        try:
            self.transport.start()
        except Exception as exc:
            # nothing can be published without a connection
            log.critical("Cannot connect to AMQP", exc_info=exc)
            return 1
        try:
            runtime = self.prepare()
            run_start_hooks(self.settings, runtime.module, runtime.cfg)
            self.transport.consume(self.amqp.LISTEN_MESSAGES_ON)
        except Exception as exc:
            log.critical("Start-up failed", exc_info=exc)
            self.report_error(exc)
            self.transport.close()
            return 1
        log.info("Fully initialized and waiting for messages")
        while not self._stop.wait(0.5):
            if not self.transport.alive():
                log.critical("The AMQP I/O thread stopped; exiting so the platform restarts the step")
                return 1
        return self.shutdown()

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        log.info("Received signal; shutting down gracefully", extra={"signal": signum})
        self._stop.set()

    def prepare(self) -> StepRuntime:
        """Fetch the step document and load component.json and the function module."""
        step = load_step(self.settings, self.api)
        self.runtime = StepRuntime(
            settings=self.settings, amqp=self.amqp, cipher=self.cipher, api=self.api,
            transport=self.transport, pool=self.pool, throttles=self.throttles,
            static_headers=self.static_headers, document=step.document, cfg=step.cfg, module=step.module,
            snapshot=step.document.get("snapshot") or {},
            auto_resolve=bool(step.reader.find(self.settings.FUNCTION).get("autoResolveObjectReferences", True)),
        )
        return self.runtime

    def _dispatch(self, delivery: Delivery) -> None:
        """The transport's delivery callback (deliveries start only after ``consume``, so after ``prepare``)."""
        runtime = self.runtime
        if runtime is None:
            self.transport.settle(delivery, False)
            return
        self.pool.submit(runtime.process_delivery, delivery)

    def shutdown(self) -> int:
        """Stop consuming, finish in-flight messages, close; exit code 0."""
        self.transport.stop_consuming()
        self.transport.wait_idle()
        self.pool.shutdown()
        self.transport.close()
        log.info("Shut down gracefully")
        return 0

    def report_error(self, exc: BaseException) -> None:
        """Publish a start-up error (no errorInput) to the error routing key, best effort."""
        headers = dict(self.settings.additional_headers)
        headers.update(self.static_headers)
        headers["messageId"] = str(uuid.uuid4())
        try:
            body, _ = error_envelope(self.cipher, format_error(exc), None, 1)
            props = publish_properties(delivery_mode(self.settings), headers)
            self.transport.publish(self.amqp.PUBLISH_MESSAGES_TO, self.amqp.ERROR_ROUTING_KEY, body,
                                   props).wait(10)
        except Exception as err:
            log.error("Could not publish the start-up error", exc_info=err)


def run_flow_step(settings: Settings) -> int:
    """Entry of ``python -m elasticio_sailor`` once settings are loaded."""
    REDACTOR.add(settings.secrets())
    if settings.HOOK_SHUTDOWN:
        return run_shutdown_hook(settings)
    try:
        step = FlowStep(settings, os.environ.get("SAILOR_CONCURRENCY") or "threads")
    except (ValueError, ComponentError, SettingsError) as exc:
        log.critical("Invalid configuration", exc_info=exc)
        return 1
    code = step.run()
    sys.stdout.flush()
    return code
