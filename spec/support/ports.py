"""Loopback ports for tests: the suite's one ``free_port`` (and a URL nobody listens on)."""

from __future__ import annotations

import socket


def free_port(*, companion_offset: int | None = None) -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago.

    ``companion_offset``: the port ``port + companion_offset`` must be free too (RabbitMQ's Erlang
    distribution listens on port + 20000); bounded to 200 tries.
    """
    for _ in range(200):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if companion_offset is None:
            return port
        companion = port + companion_offset
        if companion < 65536 and not port_listening(companion):
            return port
    raise RuntimeError("no free port pair found")


def closed_port_url() -> str:
    """A loopback URL nobody listens on: connections are refused at once (no timeout to wait for)."""
    return f"http://127.0.0.1:{free_port()}/"


def port_listening(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:``port`` (0.3 s connect timeout)."""
    with socket.socket() as sock:
        sock.settimeout(0.3)
        return sock.connect_ex(("127.0.0.1", port)) == 0
