"""Small loopback servers for transport tests: a listener with the daemon thread that serves it, and a byte
relay between two sockets (a proxy's tunnel, a TLS front)."""

from __future__ import annotations

import select
import socket
import ssl
import threading
import time


class LoopbackServer:
    """A listening socket on 127.0.0.1 served by :meth:`_serve` on a daemon thread (started by :meth:`start`,
    once the subclass has set what ``_serve`` reads)."""

    def __init__(self, scheme: str = "http") -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"{scheme}://127.0.0.1:{self.listener.getsockname()[1]}"
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _serve(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.listener.close()
        self.thread.join(5)


def relay(one: socket.socket, other: socket.socket, seconds: float = 60.0) -> None:
    """Copy bytes both ways between two connected sockets until either side closes or fails (bounded by
    ``seconds``). Bytes a TLS socket has decrypted already are relayed before waiting on the network."""
    ends = time.monotonic() + seconds
    while time.monotonic() < ends:
        buffered = [s for s in (one, other) if isinstance(s, ssl.SSLSocket) and s.pending() > 0]
        ready = buffered or select.select([one, other], [], [], 0.5)[0]
        for side in ready:
            try:
                data = side.recv(65536)
            except (OSError, ssl.SSLError):
                return
            if not data:
                return
            (other if side is one else one).sendall(data)
