"""Test helpers for the sailor: a recording fake platform API, the platform's AMQP side, sailor processes.

The platform side here is deliberately plain (pika BlockingConnection, basic_get) so that a failure
points at the sailor, not at the harness.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pika
import pika.exceptions
from elasticio_sailor.crypto import MessageCipher

from spec.support.secrets import base64_leaks

HERE = Path(__file__).resolve().parent
COMPONENTS = HERE / "components"
STEPS = COMPONENTS / "steps"
PASSWORD = "testCryptoPassword"
IV = "iv=any16_symbols"
API_USER = "sailor-test@example.com"
API_KEY = "api-key-do-not-log-0042"


@dataclass
class Recorded:
    method: str
    path: str
    auth: str | None
    content_type: str | None
    body: bytes


@dataclass
class FakeApi:
    """In-test HTTP server: answers from ``routes`` ((method, path) → list of (status, json)); records all."""

    routes: dict[tuple[str, str], list[tuple[int, Any]]] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)

    def __post_init__(self) -> None:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                api.requests.append(Recorded(self.command, self.path, self.headers.get("Authorization"),
                                             self.headers.get("Content-Type"), body))
                answers = api.routes.get((self.command, self.path))
                if not answers:
                    status, obj = 404, {"error": "not found"}
                else:
                    status, obj = answers[0] if len(answers) == 1 else answers.pop(0)
                data = b"" if obj is None else json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = _serve

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def basic_auth(self, user: str = API_USER, key: str = API_KEY) -> str:
        return "Basic " + base64.b64encode(f"{user}:{key}".encode()).decode()


@dataclass
class Output:
    routing_key: str
    body: bytes
    props: pika.BasicProperties

    @property
    def headers(self) -> dict[str, Any]:
        return self.props.headers or {}


class PlatformSide:
    """Topology, input publishing and output collection for one step on a private broker."""

    def __init__(self, amqp_url: str, name: str) -> None:
        self.amqp_url = amqp_url
        self.name = name
        self.exchange = f"{name}:exchange"
        self.queue = f"{name}:messages"
        self.keys = {k: f"{name}:step_2:{k}" for k in ("message", "error", "rebound", "snapshot", "reply")}
        self.cipher = MessageCipher(PASSWORD, IV)
        self.conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
        self.ch = self.conn.channel()
        self.ch.confirm_delivery()
        self.ch.exchange_declare(self.exchange, "direct", durable=True)
        # rejected inputs are dead-lettered here, so tests can tell reject from ack
        self.dead = f"{name}:dead"
        self.ch.queue_declare(self.dead, durable=True)
        self.ch.queue_declare(self.queue, durable=True, arguments={
            "x-dead-letter-exchange": "", "x-dead-letter-routing-key": self.dead})
        for kind, key in self.keys.items():
            q = self.out_queue(kind)
            self.ch.queue_declare(q, durable=True)
            self.ch.queue_bind(q, self.exchange, key)

    def out_queue(self, kind: str) -> str:
        return f"{self.name}:out:{kind}"

    def close(self) -> None:
        with contextlib.suppress(pika.exceptions.AMQPError):
            for kind in self.keys:
                self.ch.queue_delete(self.out_queue(kind))
            self.ch.queue_delete(self.queue)
            self.ch.queue_delete(self.dead)
            self.ch.exchange_delete(self.exchange)
            self.conn.close()

    def publish(self, body: Any, headers: dict[str, Any] | None = None, *, pv: int = 1,
                raw: bytes | None = None, with_headers: bool = True) -> str:
        """Encrypt ``body`` as a whole message and put it on the listen queue; returns its messageId."""
        mid = (headers or {}).get("messageId", str(uuid.uuid4()))
        h: dict[str, Any] = {"messageId": mid, "threadId": "thread-1", "stepId": "step_1",
                             "execId": "exec-in", "taskId": "flow-in", "userId": "user-in"}
        if pv != 1:
            h["protocolVersion"] = pv
        h.update(headers or {})
        h = {k: v for k, v in h.items() if v is not None}
        payload = raw if raw is not None else self.cipher.encrypt(body, pv)
        self.ch.basic_publish("", self.queue, payload, pika.BasicProperties(
            headers=h if with_headers else None, delivery_mode=2, content_type="application/json"))
        return str(mid)

    def get(self, kind: str, count: int = 1, timeout: float = 30.0) -> list[Output]:
        """Wait for ``count`` outputs on the queue bound to ``kind``'s key (acked when read)."""
        out: list[Output] = []
        deadline = time.monotonic() + timeout
        queue = self.out_queue(kind) if kind in self.keys else kind
        while len(out) < count:
            method, props, body = self.ch.basic_get(queue, auto_ack=True)
            if method is None:
                if time.monotonic() > deadline:
                    raise AssertionError(f"only {len(out)} of {count} {kind} outputs arrived")
                self.conn.sleep(0.05)
                continue
            out.append(Output(method.routing_key, body, props))
        return out

    def count(self, kind_or_queue: str) -> int:
        q = self.out_queue(kind_or_queue) if kind_or_queue in self.keys else kind_or_queue
        return int(self.ch.queue_declare(q, passive=True).method.message_count)

    def consumers(self) -> int:
        return int(self.ch.queue_declare(self.queue, passive=True).method.consumer_count)

    def unacked_or_ready(self) -> int:
        """Messages still in the listen queue (ready); unacked ones are counted once the consumer is gone."""
        return int(self.ch.queue_declare(self.queue, passive=True).method.message_count)

    def decode(self, out: Output) -> Any:
        pv = int(out.headers.get("protocolVersion") or 1)
        return self.cipher.decrypt(out.body, pv)


def step_doc(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"id": "step_2", "comp_id": "comp-1", "function": "echo",
                           "config": {"apiKey": "secret-cfg-value-77", "_account": "acc9"},
                           "snapshot": {"lastId": 1}, "is_passthrough": False, "variables": {"v1": "x"}}
    doc.update(overrides)
    return doc


def sailor_env(platform: PlatformSide, api: FakeApi, function: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ELASTICIO_")}
    env.update(
        ELASTICIO_FLOW_ID="flow1",
        ELASTICIO_STEP_ID="step_2",
        ELASTICIO_EXEC_ID="exec1",
        ELASTICIO_CONTAINER_ID="cont1",
        ELASTICIO_WORKSPACE_ID="ws1",
        ELASTICIO_USER_ID="user1",
        ELASTICIO_COMP_ID="comp1",
        ELASTICIO_FUNCTION=function,
        ELASTICIO_API_URI=api.url,
        ELASTICIO_API_USERNAME=API_USER,
        ELASTICIO_API_KEY=API_KEY,
        ELASTICIO_AMQP_URI=platform.amqp_url,
        ELASTICIO_LISTEN_MESSAGES_ON=platform.queue,
        ELASTICIO_PUBLISH_MESSAGES_TO=platform.exchange,
        ELASTICIO_DATA_ROUTING_KEY=platform.keys["message"],
        ELASTICIO_ERROR_ROUTING_KEY=platform.keys["error"],
        ELASTICIO_REBOUND_ROUTING_KEY=platform.keys["rebound"],
        ELASTICIO_SNAPSHOT_ROUTING_KEY=platform.keys["snapshot"],
        ELASTICIO_MESSAGE_CRYPTO_PASSWORD=PASSWORD,
        ELASTICIO_MESSAGE_CRYPTO_IV=IV,
        ELASTICIO_DATA_RATE_LIMIT="100000",
        ELASTICIO_ERROR_RATE_LIMIT="100000",
        LOG_LEVEL="info",
    )
    env.update(extra)
    return env


class SailorProc:
    """``python -m elasticio_sailor`` in its own session, output captured to a file."""

    def __init__(self, env: dict[str, str], log_path: Path, cwd: Path = STEPS, args: tuple[str, ...] = ()) -> None:
        self.log_path = log_path
        self._fh = open(log_path, "wb")  # noqa: SIM115 - closed when the process is reaped
        self.proc = subprocess.Popen([sys.executable, "-m", "elasticio_sailor", *args], cwd=cwd, env=env,
                                     stdout=self._fh, stderr=subprocess.STDOUT, start_new_session=True)

    def wait_consuming(self, platform: PlatformSide, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while platform.consumers() < 1:
            if self.proc.poll() is not None:
                raise AssertionError(f"sailor exited {self.proc.returncode}: {self.log()[-2000:]}")
            if time.monotonic() > deadline:
                raise AssertionError("sailor did not start consuming: " + self.log()[-2000:])
            time.sleep(0.05)

    def wait(self, timeout: float = 60) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            self._fh.close()

    def terminate(self, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.wait(timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self._fh.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_lines(self) -> Iterator[dict[str, Any]]:
        for line in self.log().splitlines():
            if line.startswith("{"):
                yield json.loads(line)


def wait_until(predicate: Callable[[], bool], timeout: float = 30, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def secret_variants(secret: str) -> set[str]:
    """The forms a text may quote ``secret`` in — verbatim, percent-encoded (a URL) once or twice, inside a
    ``repr`` (either quote), and each JSON-escaped (a log line) — listed here independently of the sailor's
    own list (``logs.secret_forms``; base64 is checked by decoding: :func:`base64_leaks`)."""
    forms = {secret, urllib.parse.quote(secret, safe=""), urllib.parse.quote_plus(secret),
             urllib.parse.quote(urllib.parse.quote(secret, safe=""), safe=""),
             repr(secret)[1:-1], repr(secret + '"')[1:-2],  # its own repr; inside a '…' repr
             secret.replace("\\", "\\\\")}  # inside a "…" repr (printable ASCII: only \ doubles)
    return forms | {json.dumps(f)[1:-1] for f in forms}


def assert_nothing_leaks(texts: Iterable[str], secrets: Iterable[str]) -> None:
    """No form of any of ``secrets`` in any of ``texts`` (what the sailor wrote or emitted)."""
    secrets = list(secrets)
    forms = {form: secret for secret in secrets for form in secret_variants(secret)}
    for text in texts:
        for form, secret in forms.items():
            assert form not in text, f"{form!r} (a form of {secret!r}) leaked in: {text[:2000]}"
        leaked = base64_leaks(text, secrets)
        assert not leaked, f"{leaked!r} leaked base64-encoded in: {text[:2000]}"
