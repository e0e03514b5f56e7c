"""A scripted HTTP server for protocol cases the emulator does not produce (real sockets, canned replies).

Every error *code* the connector classifies is produced by the emulator (IAM denial via the fixture key
``deniedOperations``, DisabledApiException via ``disabledOperations``, InvalidRegion/InvalidEndpointRegion via
``resourceRegion``, PlatformNotSupported via ``platform``, expired sessions via ``expired``, 500/502/503 and
throttling via faults) and tested against it. What remains scripted, and why:

* cases/error_replies.json — reply *forms* the emulator never sends: a namespaced ``__type``
  (``com.amazon.coral.service#…``), a ``:<uri>`` suffix, the code only in ``x-amzn-ErrorType``, a capitalised
  ``Message`` member, a non-JSON 400 body (the emulator always answers ``{"__type", "message"}`` plus the header);
* test_errors: a 200 reply cut off mid-body (the emulator's ``drop`` fault closes before any reply);
* test_wire: the raw request headers and body as received (the emulator's log and admin API keep neither);
* test_verify_credentials: an HTML 404 from a server that is not the metering API (the emulator answers
  unknown paths with JSON), and the probes' bodies as sent (the emulator keeps no request bodies);
* test_secrets: AWS's InvalidSignatureException quoting the canonical request it expected, session token
  included (a reply built from the request's headers: the emulator's message does not quote it).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self


@dataclass
class Canned:
    """One reply: status, headers and raw body."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    close: bool = False  # close the connection after the reply (e.g. to cut a body short)


class ScriptedServer:
    """Answers each POST with the next canned reply (the last one repeats) and records the requests.

    A reply may be a function of the request's headers (names as sent) returning the canned reply; ``port``:
    a given one (0: any free port)."""

    def __init__(self, replies: Sequence[Canned | Callable[[dict[str, str]], Canned]], port: int = 0) -> None:
        self.replies = list(replies)
        self.requests: list[tuple[dict[str, str], bytes]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                outer.requests.append((dict(self.headers.items()), self.rfile.read(length)))
                reply = outer.replies.pop(0) if len(outer.replies) > 1 else outer.replies[0]
                if not isinstance(reply, Canned):
                    reply = reply(dict(self.headers.items()))
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                if "Content-Length" not in reply.headers:
                    self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)
                self.close_connection = reply.close

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


class DroppingServer:
    """Accepts connections, reads what comes and closes them without a word: a peer cut off by the
    network (an STS or container credentials endpoint dropping the request, a TLS handshake cut short)."""

    def __init__(self) -> None:
        self.connections = 0
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self._sock.settimeout(0.05)
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:  # the accept timeout (to see the stop flag) or the socket closed
                continue
            self.connections += 1
            with conn:
                conn.settimeout(2)
                try:
                    conn.recv(65536)
                except OSError:
                    pass

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._sock.close()
