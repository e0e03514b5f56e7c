"""A total time limit for one HTTP attempt, the reply's status line, headers and body included.

requests' read timeout (urllib3's) applies to each socket read on its own: a reply that trickles in, one byte
within every read timeout (a broken proxy, a throttled link), would hold the call, its worker and its message
for as long as the bytes keep coming. This module bounds the whole exchange without leaving requests:

* :class:`DeadlineAdapter` is requests' ``HTTPAdapter`` whose connection pools (direct and through a proxy)
  make connections of urllib3's own classes with one change, their ``response_class`` (the class http.client
  builds for every reply);
* that :class:`_BoundedResponse` reads the socket through :class:`_DeadlineReader`, which, before each read,
  lowers the socket's timeout to what is left of the attempt (never above the read timeout urllib3 set), and
  raises ``TimeoutError`` (urllib3: ``ReadTimeoutError``) once nothing is left;
* the attempt's deadline is per thread (:func:`start_attempt`), set around the one ``adapter.send`` and body read of
  ``MeteringClient._exchange``: a pooled connection serves one attempt at a time, and a reply is built and read
  on the thread that sent its request.
"""

from __future__ import annotations

import http.client
import io
import socket
import threading
import time
from typing import Any

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

_ATTEMPT = threading.local()  # .deadline: time.monotonic() by which this thread's attempt must be complete


def start_attempt(seconds: float) -> None:
    """Bound the replies this thread reads from now on to ``seconds`` from now, all their reads together,
    until :func:`end_attempt` (``MeteringClient._exchange`` calls both around one request and its reply)."""
    _ATTEMPT.deadline = time.monotonic() + seconds


def end_attempt() -> None:
    """This thread's replies are no longer bounded (a pooled connection may serve another attempt next)."""
    _ATTEMPT.deadline = None


class _DeadlineReader(io.RawIOBase):
    """The socket reader http.client reads a reply from, with every read bounded by the attempt's deadline."""

    def __init__(self, raw: Any, sock: socket.socket, deadline: float) -> None:
        super().__init__()
        self._raw, self._sock, self._deadline = raw, sock, deadline
        self._per_read = sock.gettimeout()  # the read timeout urllib3 set for this request

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int | None:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the reply was not complete within the attempt's time limit")
        if self._per_read is None or left < self._per_read:  # else the read timeout is the tighter bound
            self._sock.settimeout(left)
            self._per_read = left
        return self._raw.readinto(buffer)  # type: ignore[no-any-return]

    def close(self) -> None:
        if not self.closed:
            self._raw.close()  # the socket's own reader: releases its reference on the socket
        super().close()


class _BoundedResponse(http.client.HTTPResponse):
    """http.client's reply, read through a :class:`_DeadlineReader` when the thread's attempt has a deadline."""

    def __init__(self, sock: socket.socket, *args: Any, **kwargs: Any) -> None:
        super().__init__(sock, *args, **kwargs)
        deadline = getattr(_ATTEMPT, "deadline", None)
        if deadline is not None:  # detach: the first buffer (nothing read yet) must not close the raw reader
            self.fp = io.BufferedReader(_DeadlineReader(self.fp.detach(), sock, deadline))


class _HTTPConnection(HTTPConnection):
    response_class = _BoundedResponse


class _HTTPSConnection(HTTPSConnection):
    response_class = _BoundedResponse


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


_POOLS = {"http": _HTTPPool, "https": _HTTPSPool}


class DeadlineAdapter(HTTPAdapter):
    """requests' adapter whose pools (direct or through a proxy) make connections with bounded replies."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        manager.pool_classes_by_scheme = _POOLS
        return manager
