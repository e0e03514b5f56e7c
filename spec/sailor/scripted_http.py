"""A tiny HTTP server whose every answer is scripted by the test (bad answers included), on 127.0.0.x.

``ScriptedServer(answer, host)`` calls ``answer(handler)`` for each request after recording it
(method, path, headers, body) in :attr:`ScriptedServer.requests`; the helpers below write the usual
answers: a JSON/bytes answer, a redirect, a body shorter than its ``Content-Length`` or stalled, a garbled status line.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


Answer = Callable[[BaseHTTPRequestHandler], None]


class ScriptedServer:
    def __init__(self, answer: Answer, host: str = "127.0.0.1") -> None:
        self.answer = answer
        self.requests: list[Seen] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                server.requests.append(Seen(self.command, self.path,
                                            {k.lower(): v for k, v in self.headers.items()}, body))
                self.close_connection = True
                with contextlib.suppress(OSError):
                    server.answer(self)

            do_GET = do_POST = do_PUT = do_DELETE = _handle

            def log_message(self, format: str, *args: Any) -> None:
                """Silent."""

        self._server = ThreadingHTTPServer((host, 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def reply(status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> Answer:
    """A complete answer."""
    def answer(h: BaseHTTPRequestHandler) -> None:
        h.send_response(status)
        for name, value in (headers or {}).items():
            h.send_header(name, value)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)
    return answer


def redirect(status: int, location: str | Callable[[], str]) -> Answer:
    """A redirect to ``location`` (or to what the callable returns when the request comes)."""
    def answer(h: BaseHTTPRequestHandler) -> None:
        reply(status, b"moved", {"Location": location if isinstance(location, str) else location()})(h)
    return answer


def truncated(status: int = 200, promised: int = 1000, sent: bytes = b"0123456789") -> Answer:
    """``Content-Length: promised`` but only ``sent`` before the connection is closed."""
    def answer(h: BaseHTTPRequestHandler) -> None:
        h.send_response(status)
        h.send_header("Content-Length", str(promised))
        h.end_headers()
        h.wfile.write(sent)
        h.wfile.flush()
    return answer


def stalled(status: int, seconds: float) -> Answer:
    """The status line, headers and a few bytes of the body, then nothing for ``seconds`` (a read timeout)."""
    def answer(h: BaseHTTPRequestHandler) -> None:
        truncated(status)(h)
        time.sleep(seconds)
    return answer


def garbled(h: BaseHTTPRequestHandler) -> None:
    """Not an HTTP status line at all (``http.client.BadStatusLine``)."""
    h.wfile.write(b"NONSENSE\r\n\r\n")
    h.wfile.flush()
