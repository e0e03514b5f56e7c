"""The elastic.io platform's side of flow steps, in plain Python, for tests against real sailors.

What the platform does around a sailor, and nothing more:

* declares the topology of a flow (docs/platform-contract.md §4.1): one durable direct exchange per flow, a
  durable listen queue per step, the next step's listen queue bound to the previous step's data
  routing key, and collector queues for every step's data, error, rebound and snapshot keys;
* serves step documents (and the few other platform API calls a sailor makes) over HTTP with
  basic auth, recording every request (:class:`FakePlatformApi`);
* publishes encrypted input messages with the headers the platform sets, and consumes, decodes and
  decrypts what the sailors publish (:class:`Platform`);
* starts and stops sailor processes, Node 2.7.8 or Python, with the full ``ELASTICIO_*``
  environment, and can kill them with SIGKILL (:class:`SailorProcess`).

The message crypto (AES-256-CBC, key = SHA-256 of the password, IV = the IV string's UTF-8 bytes,
PKCS#7, protocol 1 = base64 text, protocol 2 = raw bytes; docs/platform-contract.md §5) is implemented here on its
own with ``cryptography`` so that a bug in the sailor's crypto cannot hide behind the same code on both sides.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import itertools
import json
import os
import secrets
import signal
import string
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self, TypeVar

import pika
import pika.exceptions
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

ROOT = Path(__file__).resolve().parents[2]
NODEPEERS = ROOT / "nodepeers"
NODE_SAILOR_RUN = NODEPEERS / "node_modules" / "elasticio-sailor-nodejs" / "run.js"
NODE_COMPONENTS = NODEPEERS / "components"
PY_COMPONENTS = ROOT / "spec" / "sailor" / "components_py"

T = TypeVar("T")

# ---------------------------------------------------------------------------------------------
# crypto (docs/platform-contract.md §5)


def compact_json(obj: Any) -> bytes:
    """JSON text as Node's ``JSON.stringify`` writes it: no spaces, non-ASCII kept, UTF-8."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


class MessageCrypto:
    """AES-256-CBC message crypto of the sailors, both wire encodings."""

    def __init__(self, password: str, iv: str) -> None:
        self.key = hashlib.sha256(password.encode("utf-8")).digest()
        self.iv = iv.encode("utf-8")
        if len(self.iv) != 16:
            raise ValueError("the IV must be exactly 16 bytes once UTF-8 encoded")

    def _cipher(self) -> Cipher[modes.CBC]:
        return Cipher(algorithms.AES(self.key), modes.CBC(self.iv))

    def encrypt(self, plain: bytes) -> bytes:
        """Raw ciphertext of ``plain`` (PKCS#7 padded)."""
        padder = padding.PKCS7(128).padder()
        enc = self._cipher().encryptor()
        return enc.update(padder.update(plain) + padder.finalize()) + enc.finalize()

    def decrypt(self, cipher_bytes: bytes) -> bytes:
        """Plaintext of raw ciphertext; raises ``ValueError`` on bad padding or length."""
        dec = self._cipher().decryptor()
        unpadder = padding.PKCS7(128).unpadder()
        padded = dec.update(cipher_bytes) + dec.finalize()
        return unpadder.update(padded) + unpadder.finalize()

    def encode(self, message: Any, protocol_version: int = 1) -> bytes:
        """AMQP body for ``message``: base64 text for protocol 1, raw ciphertext for 2."""
        raw = self.encrypt(compact_json(message))
        return raw if protocol_version >= 2 else base64.b64encode(raw)

    def decode(self, body: bytes, protocol_version: int = 1) -> Any:
        """Inverse of :meth:`encode`."""
        raw = body if protocol_version >= 2 else base64.b64decode(body, validate=True)
        return json.loads(self.decrypt(raw).decode("utf-8"))

    def decode_error(self, body: bytes) -> dict[str, Any]:
        """An error message body ``{"error": b64, "errorInput"?: b64}`` → both fields decrypted."""
        envelope = json.loads(body)
        out: dict[str, Any] = {"error": self.decode(envelope["error"].encode("ascii"), 1)}
        if "errorInput" in envelope:
            out["errorInput"] = self.decode(envelope["errorInput"].encode("ascii"), 1)
        return out


def random_crypto_settings() -> tuple[str, str]:
    """A fresh (password, 16-character IV) pair, so no test depends on a fixed secret."""
    alphabet = string.ascii_letters + string.digits
    return secrets.token_urlsafe(24), "".join(secrets.choice(alphabet) for _ in range(16))


# ---------------------------------------------------------------------------------------------
# flow steps and the platform API


@dataclass
class Step:
    """One flow step as the platform sees it: ids, queue, routing keys and its step document."""

    flow_id: str
    step_id: str
    function: str
    exchange: str
    comp_id: str = "5559edd38968ec0736000456"
    config: dict[str, Any] = field(default_factory=lambda: {"apiKey": "secret"})
    snapshot: dict[str, Any] = field(default_factory=dict)
    is_passthrough: bool = False
    variables: dict[str, Any] = field(default_factory=dict)

    @property
    def listen_queue(self) -> str:
        return f"{self.flow_id}:{self.step_id}:messages"

    def routing_key(self, kind: str) -> str:
        """Routing key of this step's ``message``/``error``/``rebound``/``snapshot`` publishes."""
        return f"{self.flow_id}.{self.step_id}.{kind}"

    def out_queue(self, kind: str) -> str:
        """The collector queue the platform binds to this step's ``kind`` routing key."""
        return f"{self.flow_id}:{self.step_id}:out:{kind}"

    def document(self) -> dict[str, Any]:
        """The step document served at ``GET /v1/tasks/{flow}/steps/{step}``."""
        return {
            "id": self.step_id,
            "comp_id": self.comp_id,
            "function": self.function,
            "config": self.config,
            "snapshot": self.snapshot,
            "is_passthrough": self.is_passthrough,
            "variables": self.variables,
        }


OUT_KINDS = ("message", "error", "rebound", "snapshot")


def new_flow(functions: Iterable[str], prefix: str = "flow") -> list[Step]:
    """Steps ``step_1``…``step_n`` of a fresh flow (unique ids, so tests never share queues)."""
    flow_id = f"{prefix}{uuid.uuid4().hex[:12]}"
    exchange = f"{flow_id}_exchange"
    return [Step(flow_id, f"step_{i}", fn, exchange) for i, fn in enumerate(functions, start=1)]


@dataclass
class ApiRequest:
    """One request the fake platform API received."""

    method: str
    path: str
    authorized: bool
    body: Any


class FakePlatformApi:
    """The platform API a sailor talks to, on a free port, in a background thread.

    Answers ``GET /v1/tasks/{flow}/steps/{step}`` with the registered step documents,
    ``PUT /v1/accounts/{id}`` (``updateKeys``), and the startup hooks-data calls
    (``POST/GET/DELETE /sailor-support/hooks/task/{flow}/startup/data``); anything else is 404.
    Requests without the right basic auth get 401. Every request is recorded in :attr:`requests`.
    """

    def __init__(self, username: str = "platform@example.com", api_key: str | None = None) -> None:
        self.username = username
        self.api_key = api_key or secrets.token_urlsafe(16)
        self.steps: dict[tuple[str, str], dict[str, Any]] = {}
        self.accounts: dict[str, Any] = {}
        self.startup_data: dict[str, Any] = {}
        self.requests: list[ApiRequest] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def add_step(self, step: Step) -> None:
        with self._lock:
            self.steps[(step.flow_id, step.step_id)] = step.document()

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        api = self
        expected = "Basic " + base64.b64encode(f"{api.username}:{api.api_key}".encode()).decode()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _reply(self, code: int, obj: Any = None) -> None:
                data = b"" if obj is None else json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body: Any = json.loads(raw) if raw else None
                except ValueError:
                    body = raw.decode("utf-8", "replace")
                authorized = self.headers.get("Authorization") == expected
                path = self.path.split("?", 1)[0].rstrip("/")
                with api._lock:
                    api.requests.append(ApiRequest(self.command, path, authorized, body))
                if not authorized:
                    return self._reply(401, {"error": "bad credentials"})
                parts = path.strip("/").split("/")
                with api._lock:
                    code, obj = api._route(self.command, parts, body)
                self._reply(code, obj)

            do_GET = do_POST = do_PUT = do_DELETE = _handle

            def log_message(self, format: str, *args: Any) -> None:
                """Silent: requests are recorded in ``api.requests`` instead."""

        return Handler

    def _route(self, method: str, parts: list[str], body: Any) -> tuple[int, Any]:
        if method == "GET" and len(parts) == 5 and parts[:2] == ["v1", "tasks"] and parts[3] == "steps":
            doc = self.steps.get((parts[2], parts[4]))
            return (200, doc) if doc is not None else (404, {"error": "no such step"})
        if method == "PUT" and len(parts) == 3 and parts[:2] == ["v1", "accounts"]:
            self.accounts[parts[2]] = body
            return 200, {"id": parts[2]}
        hooks = ["sailor-support", "hooks", "task"]
        if len(parts) == 6 and parts[:3] == hooks and parts[4:] == ["startup", "data"]:
            flow = parts[3]
            if method == "POST":
                if flow in self.startup_data:
                    return 409, {"error": "already exists"}
                self.startup_data[flow] = body
                return 200, {}
            if method == "GET":
                return (
                    (200, self.startup_data[flow]) if flow in self.startup_data else (404, {"error": "none"})
                )
            if method == "DELETE":
                self.startup_data.pop(flow, None)
                return 204, None
        return 404, {"error": "not served by the fake platform API"}


# ---------------------------------------------------------------------------------------------
# AMQP: topology, inputs, outputs


@dataclass
class Output:
    """One message a sailor published, as a consumer of a collector queue sees it."""

    queue: str
    routing_key: str
    headers: dict[str, Any]
    content_type: str | None
    content_encoding: str | None
    delivery_mode: int | None
    expiration: str | None
    body: bytes
    message: Any = None

    @property
    def protocol_version(self) -> int:
        return int(self.headers.get("protocolVersion", 1))


def _retrying(fn: Callable[[], T], timeout: float) -> T:
    """Call ``fn`` until it stops raising AMQP connection errors (a broker restart), or time out."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return fn()
        except (pika.exceptions.AMQPConnectionError, pika.exceptions.AMQPChannelError, OSError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


class Platform:
    """The platform's AMQP side on one broker, with the crypto settings of the flows it drives."""

    def __init__(self, amqp_url: str, password: str | None = None, iv: str | None = None) -> None:
        if password is None or iv is None:
            password, iv = random_crypto_settings()
        self.amqp_url = amqp_url
        self.password = password
        self.iv = iv
        self.crypto = MessageCrypto(password, iv)
        self._conn: pika.BlockingConnection | None = None
        self._channel: Any = None

    # connection handling: one blocking connection, re-opened after a broker restart

    def channel(self) -> Any:
        """The platform's confirm-mode channel, (re)connecting if needed."""
        if self._conn is None or self._conn.is_closed or self._channel is None or self._channel.is_closed:
            self.close()
            self._conn = pika.BlockingConnection(pika.URLParameters(self.amqp_url + "?heartbeat=0"))
            self._channel = self._conn.channel()
            self._channel.confirm_delivery()
        return self._channel

    def close(self) -> None:
        conn, self._conn, self._channel = self._conn, None, None
        if conn is not None and conn.is_open:
            try:
                conn.close()
            except pika.exceptions.AMQPError:
                pass

    def _call(self, fn: Callable[[Any], T], timeout: float = 60.0) -> T:
        def attempt() -> T:
            try:
                return fn(self.channel())
            except (pika.exceptions.AMQPConnectionError, pika.exceptions.AMQPChannelError, OSError):
                self.close()
                raise

        return _retrying(attempt, timeout)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # topology (docs/platform-contract.md §4.1: the platform declares everything, the sailor nothing)

    def declare_flow(self, steps: list[Step], chain: bool = True) -> None:
        """Exchange, listen queues, collector queues; with ``chain`` each step feeds the next."""

        def declare(ch: Any) -> None:
            for step in steps:
                ch.exchange_declare(step.exchange, "direct", durable=True)
                ch.queue_declare(step.listen_queue, durable=True)
                for kind in OUT_KINDS:
                    ch.queue_declare(step.out_queue(kind), durable=True)
                    ch.queue_bind(step.out_queue(kind), step.exchange, step.routing_key(kind))
            if chain:
                for prev, nxt in itertools.pairwise(steps):
                    ch.queue_bind(nxt.listen_queue, prev.exchange, prev.routing_key("message"))

        self._call(declare)

    def bind(self, queue: str, exchange: str, routing_key: str) -> None:
        """Bind ``queue`` to ``routing_key`` too (e.g. an error-handler step to a step's error key)."""
        self._call(lambda ch: ch.queue_bind(queue, exchange, routing_key))

    def declare_reply_queue(self, exchange: str) -> str:
        """A queue bound to a fresh ``reply_to`` routing key (request/reply webhooks)."""
        name = f"reply.{uuid.uuid4().hex}"

        def declare(ch: Any) -> None:
            ch.queue_declare(name, durable=True)
            ch.queue_bind(name, exchange, name)

        self._call(declare)
        return name

    def delete_flow(self, steps: list[Step]) -> None:
        """Remove what :meth:`declare_flow` created."""

        def delete(ch: Any) -> None:
            for step in steps:
                ch.queue_delete(step.listen_queue)
                for kind in OUT_KINDS:
                    ch.queue_delete(step.out_queue(kind))
            for exchange in {s.exchange for s in steps}:
                ch.exchange_delete(exchange)

        self._call(delete)

    # inputs

    def input_headers(self, step: Step, message_id: str, **extra: Any) -> dict[str, Any]:
        """Headers the platform sets on a message delivered to ``step`` (from a previous step)."""
        headers: dict[str, Any] = {
            "messageId": message_id,
            "taskId": step.flow_id,
            "execId": "platform-exec-1",
            "userId": "5559edd38968ec0736000002",
            "workspaceId": "platform-workspace-1",
            "stepId": "step_0",
            "threadId": "platform-thread-1",
        }
        headers.update(extra)
        return headers

    def publish_input(
        self,
        step: Step,
        message: dict[str, Any],
        protocol_version: int = 1,
        headers: dict[str, Any] | None = None,
        body: bytes | None = None,
    ) -> str:
        """Encrypt ``message`` and queue it persistently on ``step``'s listen queue; returns its messageId."""
        message_id = str(message.get("id") or uuid.uuid4())
        hdrs = self.input_headers(step, message_id, protocolVersion=protocol_version)
        if headers is not None:
            hdrs.update(headers)
        payload = body if body is not None else self.crypto.encode(message, protocol_version)
        props = pika.BasicProperties(
            headers=hdrs, content_type="application/json", content_encoding="utf8", delivery_mode=2
        )
        self._call(lambda ch: ch.basic_publish("", step.listen_queue, payload, props))
        return message_id

    def publish_inputs(
        self, step: Step, bodies: Iterable[dict[str, Any]], protocol_version: int = 1
    ) -> list[str]:
        """Queue one message per body (``id`` = messageId = a new UUID); returns the messageIds in order."""
        ids = []
        for body in bodies:
            mid = str(uuid.uuid4())
            message = {"id": mid, "body": body, "headers": {}, "attachments": {}}
            ids.append(self.publish_input(step, message, protocol_version))
        return ids

    # outputs

    def _decode(self, kind: str, out: Output) -> Any:
        if kind == "message":
            return self.crypto.decode(out.body, out.protocol_version)
        if kind == "error":
            return self.crypto.decode_error(out.body)
        if kind == "snapshot":
            return json.loads(out.body)
        return None  # rebound bodies are the original input bytes, left as they are

    def collect(
        self, queue: str, count: int, timeout: float, kind: str = "message", settle: float = 0.0
    ) -> list[Output]:
        """Consume (and ack) up to ``count`` messages from ``queue`` within ``timeout`` seconds.

        ``kind`` says how to decode bodies (``message``, ``error``, ``snapshot``, ``raw``). With
        ``settle`` > 0, keep listening until the queue has been quiet that long after ``count`` was
        reached, so that extra (duplicate) messages are caught as well.
        """
        got: list[Output] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self._consume_into(got, queue, count, deadline, kind, settle)
                return got
            except (pika.exceptions.AMQPConnectionError, pika.exceptions.AMQPChannelError, OSError):
                self.close()
                time.sleep(0.3)
        return got

    def _consume_into(
        self, got: list[Output], queue: str, count: int, deadline: float, kind: str, settle: float
    ) -> None:
        ch = self.channel()
        ch.basic_qos(prefetch_count=500)
        quiet_since = time.monotonic()
        try:
            for method, props, body in ch.consume(queue, auto_ack=False, inactivity_timeout=0.1):
                now = time.monotonic()
                if method is None:
                    if len(got) >= count and now - quiet_since >= settle:
                        return
                    if now >= deadline:
                        return
                    continue
                quiet_since = now
                out = Output(
                    queue=queue,
                    routing_key=method.routing_key,
                    headers=dict(props.headers or {}),
                    content_type=props.content_type,
                    content_encoding=props.content_encoding,
                    delivery_mode=props.delivery_mode,
                    expiration=props.expiration,
                    body=body,
                )
                out.message = self._decode(kind, out)
                got.append(out)
                ch.basic_ack(method.delivery_tag)
                if (len(got) >= count and settle <= 0) or now >= deadline:
                    return
        finally:
            if ch.is_open:
                ch.cancel()

    def drain(
        self, queue: str, kind: str = "message", timeout: float = 60.0, settle: float = 0.3
    ) -> list[Output]:
        """Everything that arrives in ``queue`` until it has been empty for ``settle`` seconds."""
        return self.collect(queue, 0, timeout, kind=kind, settle=settle)

    def ready(self, queue: str) -> int:
        """Messages ready in ``queue`` (not counting deliveries a consumer holds unacked)."""
        return int(self._call(lambda ch: ch.queue_declare(queue, passive=True).method.message_count))

    def consumers(self, queue: str) -> int:
        return int(self._call(lambda ch: ch.queue_declare(queue, passive=True).method.consumer_count))

    def wait_for(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        """Poll ``predicate`` (AMQP errors during a broker restart count as "not yet") until it holds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if predicate():
                    return
            except (pika.exceptions.AMQPError, OSError):
                self.close()
            time.sleep(0.1)
        raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


# ---------------------------------------------------------------------------------------------
# sailor processes


def sailor_env(
    step: Step,
    platform: Platform,
    api: FakePlatformApi,
    container_id: str = "container-1",
    **overrides: str,
) -> dict[str, str]:
    """The complete ``ELASTICIO_*`` environment the platform gives the sailor of ``step``.

    ``overrides`` are further variables by full name (e.g. ``ELASTICIO_PROTOCOL_VERSION="2"``).
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("ELASTICIO_")}
    env.pop("NODE_ENV", None)
    env.update(
        ELASTICIO_FLOW_ID=step.flow_id,
        ELASTICIO_STEP_ID=step.step_id,
        ELASTICIO_EXEC_ID="exec-" + step.step_id,
        ELASTICIO_CONTAINER_ID=container_id,
        ELASTICIO_WORKSPACE_ID="workspace-1",
        ELASTICIO_USER_ID="5559edd38968ec0736000002",
        ELASTICIO_COMP_ID=step.comp_id,
        ELASTICIO_FUNCTION=step.function,
        ELASTICIO_API_URI=api.url,
        ELASTICIO_API_USERNAME=api.username,
        ELASTICIO_API_KEY=api.api_key,
        ELASTICIO_AMQP_URI=platform.amqp_url,
        ELASTICIO_LISTEN_MESSAGES_ON=step.listen_queue,
        ELASTICIO_PUBLISH_MESSAGES_TO=step.exchange,
        ELASTICIO_DATA_ROUTING_KEY=step.routing_key("message"),
        ELASTICIO_ERROR_ROUTING_KEY=step.routing_key("error"),
        ELASTICIO_REBOUND_ROUTING_KEY=step.routing_key("rebound"),
        ELASTICIO_SNAPSHOT_ROUTING_KEY=step.routing_key("snapshot"),
        ELASTICIO_MESSAGE_CRYPTO_PASSWORD=platform.password,
        ELASTICIO_MESSAGE_CRYPTO_IV=platform.iv,
        LOG_LEVEL="warn",
    )
    env.update(overrides)
    return env


class SailorProcess:
    """One sailor process (``node run.js`` or ``python -m elasticio_sailor``) for one step."""

    def __init__(self, kind: str, component_dir: Path, env: dict[str, str], log_path: Path) -> None:
        if kind not in ("node", "python"):
            raise ValueError(f"unknown sailor kind {kind!r}")
        self.kind = kind
        self.component_dir = Path(component_dir)
        self.env = env
        self.log_path = Path(log_path)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def command(self) -> list[str]:
        if self.kind == "node":
            return ["node", str(NODE_SAILOR_RUN)]
        return [sys.executable, "-m", "elasticio_sailor"]

    @property
    def pid(self) -> int:
        assert self.proc is not None, "not started"
        return self.proc.pid

    def start(self) -> Self:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.command,
                cwd=self.component_dir,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_consuming(
        self, platform: Platform, queue: str, timeout: float = 60.0, consumers: int = 1
    ) -> None:
        """Wait until ``queue`` has ``consumers`` consumers; fail at once if this process exits."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"{self.kind} sailor exited (rc={self.returncode()}): {self.log_tail()}")
            if platform.consumers(queue) >= consumers:
                return
            time.sleep(0.1)
        raise TimeoutError(f"{self.kind} sailor did not consume {queue} within {timeout}s: {self.log_tail()}")

    def kill9(self) -> None:
        """SIGKILL the sailor (its whole process group) and reap it."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def terminate(self, timeout: float = 20.0) -> int | None:
        """SIGTERM (graceful shutdown); SIGKILL after ``timeout``. Returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill9()
        return self.proc.returncode

    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 15) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])


class Sailors:
    """Starts sailors for steps and stops every one of them at the end (a context manager)."""

    def __init__(self, platform: Platform, api: FakePlatformApi, log_dir: Path) -> None:
        self.platform = platform
        self.api = api
        self.log_dir = Path(log_dir)
        self.started: list[SailorProcess] = []

    def start(
        self,
        kind: str,
        step: Step,
        component: str | Path = "echo",
        container_id: str | None = None,
        wait: bool = True,
        consumers: int = 1,
        env: dict[str, str] | None = None,
        **more_env: str,
    ) -> SailorProcess:
        """Register ``step`` with the API and start a ``kind`` sailor running ``component`` for it.

        ``component`` is a folder name under nodepeers/components (Node) or
        spec/sailor/components_py (Python), or a ``Path`` to any component root (e.g. the
        connector's). ``env`` and ``more_env`` add to (or override) the ``ELASTICIO_*`` variables.
        """
        overrides = {**(env or {}), **more_env}
        self.api.add_step(step)
        base = Path(component) if isinstance(component, Path) else None
        if base is None:
            base = (NODE_COMPONENTS if kind == "node" else PY_COMPONENTS) / component
        cid = container_id or f"{kind}-{step.step_id}-{len(self.started) + 1}"
        sailor = SailorProcess(
            kind,
            base,
            sailor_env(step, self.platform, self.api, container_id=cid, **overrides),
            self.log_dir / f"{cid}.log",
        ).start()
        self.started.append(sailor)
        if wait:
            sailor.wait_consuming(self.platform, step.listen_queue, consumers=consumers)
        return sailor

    def stop_all(self) -> None:
        for sailor in self.started:
            sailor.terminate(timeout=15)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()


def by_parent(outputs: Iterable[Output]) -> dict[str, list[Output]]:
    """Outputs grouped by their ``parentMessageId`` header (= the input's messageId)."""
    groups: dict[str, list[Output]] = {}
    for out in outputs:
        groups.setdefault(str(out.headers.get("parentMessageId")), []).append(out)
    return groups


@contextlib.contextmanager
def running_platform(amqp_url: str, log_dir: Path) -> Iterator[tuple[Platform, FakePlatformApi, Sailors]]:
    """A platform on ``amqp_url`` with fresh crypto settings, its API, and a sailor launcher.

    Every sailor started through the launcher is stopped, and the API and AMQP connection closed,
    on exit.
    """
    with Platform(amqp_url) as platform, FakePlatformApi() as api, Sailors(platform, api, log_dir) as sailors:
        yield platform, api, sailors


@dataclass
class DeliveryReport:
    """How a set of echo outputs matches the inputs that caused them."""

    inputs: int
    outputs: int
    missing: list[str]
    duplicates: int
    wrong: list[Output]

    def summary(self) -> str:
        return (
            f"inputs={self.inputs} outputs={self.outputs} missing={len(self.missing)} "
            f"duplicates={self.duplicates} wrong={len(self.wrong)}"
        )


def delivery_report(expected_bodies: dict[str, Any], outputs: list[Output]) -> DeliveryReport:
    """Match echo outputs to inputs by ``parentMessageId``; an output must carry its input's body.

    ``duplicates`` counts outputs beyond the first for an input (at-least-once redeliveries);
    ``wrong`` lists outputs for unknown inputs or with a body that is not the input's.
    """
    groups = by_parent(outputs)
    wrong = [
        out
        for parent, outs in groups.items()
        for out in outs
        if parent not in expected_bodies or out.message.get("body") != expected_bodies[parent]
    ]
    missing = [mid for mid in expected_bodies if mid not in groups]
    duplicates = sum(len(outs) - 1 for parent, outs in groups.items() if parent in expected_bodies)
    return DeliveryReport(len(expected_bodies), len(outputs), missing, duplicates, wrong)
