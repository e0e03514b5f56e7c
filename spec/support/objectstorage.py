"""A small object-storage server ("maester") for tests of lightweight messages, on 127.0.0.1.

It serves the paths the Node sailor 2.7.8's client ``@elastic.io/maester-client`` 6.0.0 uses
(``dist/src/StorageClient.js``): ``POST /objects`` (body = the object, possibly sent chunked;
answer ``{"objectId": …}``), ``GET /objects/{id}`` (the stored bytes), ``DELETE /objects/{id}``,
below an optional path prefix (``http://127.0.0.1:PORT/maester/objects``). Every request must carry
``Authorization: Bearer <token>`` (otherwise 401). Objects are kept in memory exactly as received —
for the sailors that is the raw AES-256-CBC ciphertext of the body's JSON.

Failures can be injected for the next requests: an HTTP status (:meth:`fail_next`), a delay before
answering (:meth:`slow_next`) or a dropped connection without an answer (:meth:`drop_next`). Every
request is recorded (method, path, headers, body, whether it was chunked) in :attr:`requests`.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


@dataclass
class StorageRequest:
    """One request the server received (recorded before any injected failure is applied)."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    chunked: bool
    authorized: bool


@dataclass
class StoredObject:
    data: bytes
    content_type: str


class ObjectStorageServer:
    """In-memory object storage with the maester API paths, bearer-token auth and fault injection."""

    def __init__(self, token: str, prefix: str = "") -> None:
        self.token = token
        self.prefix = "/" + prefix.strip("/") if prefix.strip("/") else ""
        self.objects: dict[str, StoredObject] = {}
        self.requests: list[StorageRequest] = []
        self._faults: deque[tuple[str, Any]] = deque()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    # ------------------------------------------------------------------ control
    @property
    def url(self) -> str:
        """The ``ELASTICIO_OBJECT_STORAGE_URI`` of this server (with the prefix, no trailing slash)."""
        return f"http://127.0.0.1:{self._server.server_address[1]}{self.prefix}"

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

    def fail_next(self, count: int, status: int = 503) -> None:
        """Answer the next ``count`` requests with ``status`` (and a short JSON error)."""
        with self._lock:
            self._faults.extend(("status", status) for _ in range(count))

    def slow_next(self, count: int, seconds: float) -> None:
        """Wait ``seconds`` before answering each of the next ``count`` requests (then answer normally)."""
        with self._lock:
            self._faults.extend(("delay", seconds) for _ in range(count))

    def drop_next(self, count: int) -> None:
        """Close the connection of each of the next ``count`` requests without answering."""
        with self._lock:
            self._faults.extend(("drop", None) for _ in range(count))

    def put(self, data: bytes, content_type: str = "application/json") -> str:
        """Store ``data`` directly (as the platform would have); returns its id."""
        object_id = str(uuid.uuid4())
        with self._lock:
            self.objects[object_id] = StoredObject(data, content_type)
        return object_id

    def of(self, method: str) -> list[StorageRequest]:
        with self._lock:
            return [r for r in self.requests if r.method == method]

    # ------------------------------------------------------------------ HTTP
    def _next_fault(self) -> tuple[str, Any] | None:
        with self._lock:
            return self._faults.popleft() if self._faults else None

    def _route(self, method: str, path: str, body: bytes, content_type: str) -> tuple[int, bytes, str]:
        if not path.startswith(self.prefix + "/objects"):
            return 404, b'{"error":"not found"}', "application/json"
        rest = path[len(self.prefix) + len("/objects"):]
        if method == "POST" and rest in ("", "/"):
            object_id = str(uuid.uuid4())
            with self._lock:
                self.objects[object_id] = StoredObject(body, content_type or "application/octet-stream")
            answer = {"objectId": object_id, "contentType": content_type, "contentLength": len(body),
                      "createdAt": int(time.time() * 1000)}
            return 201, json.dumps(answer).encode(), "application/json"
        if rest.startswith("/") and rest.count("/") == 1 and len(rest) > 1:
            object_id = rest[1:]
            with self._lock:
                obj = self.objects.get(object_id)
                if method == "DELETE" and obj is not None:
                    del self.objects[object_id]
            if obj is None:
                return 404, b'{"error":"Object not found"}', "application/json"
            if method == "GET":
                return 200, obj.data, obj.content_type
            if method == "DELETE":
                return 204, b"", "application/json"
        return 405, b'{"error":"method not allowed"}', "application/json"

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        storage = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _read_body(self) -> tuple[bytes, bool]:
                if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                    parts: list[bytes] = []
                    while True:
                        size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return b"".join(parts), True
                        parts.append(self.rfile.read(size))
                        self.rfile.readline()
                length = int(self.headers.get("Content-Length") or 0)
                return (self.rfile.read(length) if length else b""), False

            def _handle(self) -> None:
                body, chunked = self._read_body()
                authorized = self.headers.get("Authorization") == f"Bearer {storage.token}"
                path = self.path.split("?", 1)[0]
                with storage._lock:
                    storage.requests.append(StorageRequest(
                        self.command, path, {k.lower(): v for k, v in self.headers.items()}, body, chunked,
                        authorized))
                fault = storage._next_fault()
                if fault is not None and fault[0] == "drop":
                    self.close_connection = True
                    with contextlib.suppress(OSError):
                        self.connection.shutdown(2)
                    return
                if fault is not None and fault[0] == "delay":
                    time.sleep(fault[1])
                if fault is not None and fault[0] == "status":
                    code, data, ctype = fault[1], b'{"error":"injected failure"}', "application/json"
                elif not authorized:
                    code, data, ctype = 401, b'{"error":"Unauthorized"}', "application/json"
                else:
                    code, data, ctype = storage._route(self.command, path, body,
                                                       self.headers.get("Content-Type") or "")
                with contextlib.suppress(OSError):
                    self.send_response(code)
                    self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = _handle

            def log_message(self, format: str, *args: Any) -> None:
                """Silent: requests are recorded in ``storage.requests``."""

        return Handler
