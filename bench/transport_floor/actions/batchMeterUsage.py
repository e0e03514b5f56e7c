"""The connector's transport alone, for ``bench/e2e_flow.py --floor``: one MeteringClient.call per message.

The message body goes to the endpoint as it is and AWS's answer comes back as the result: no validation,
timestamp window, decimal members, isolation, echo matching or summary. The gap between this run and the
connector's is what the connector's own logic costs; the gap to the peer is the sailor plus the transport
(requests + requests-aws4auth). Never use it in a flow: it bills whatever it is given.

With ``FLOOR_TRANSPORT=http.client`` in its environment (``bench/e2e_flow.py --http-client``) the exchange
skips requests and urllib3: one keep-alive ``http.client`` connection per worker thread, plain HTTP only,
the same signing and parsing. With ``FLOOR_ACTION=connector`` as well, each message goes through the
connector's real Batch Meter Usage action (all its logic) over that exchange. Both measure what a cheaper
transport than requests' would buy; the connector itself never uses it (its client is requests +
requests-aws4auth, with TLS verification, proxies and pooled connections).
"""

from __future__ import annotations

import http.client
import importlib.util
import os
import sys
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))  # the repository root, for lib/

from lib import client as client_module  # noqa: E402
from lib.client import client_for, settings_for  # noqa: E402
from lib.operations import OPERATIONS  # noqa: E402

OPERATION = OPERATIONS["batchMeterUsage"]
_connections = threading.local()


def _http_client_exchange(self: Any, prep: Any) -> Any:
    """MeteringClient._exchange over this thread's own keep-alive http.client connection (loopback HTTP)."""
    conn = getattr(_connections, "conn", None)
    if conn is None:
        url = urlsplit(prep.url)
        if url.scheme != "http":
            raise ValueError("FLOOR_TRANSPORT=http.client is for the emulator's plain-HTTP endpoint only")
        conn = _connections.conn = http.client.HTTPConnection(url.hostname or "", url.port, timeout=30)
    conn.request("POST", "/", body=prep.body, headers=prep.headers)  # headers and body in one send
    resp = conn.getresponse()
    content = resp.read()
    return client_module._Answer(resp.status, resp.reason or "", resp.headers, content)


if os.environ.get("FLOOR_TRANSPORT") == "http.client":
    client_module.MeteringClient._exchange = _http_client_exchange  # type: ignore[method-assign]


def process(self: Any, msg: dict[str, Any], cfg: dict[str, Any], snapshot: dict[str, Any]) -> dict[str, Any] | None:
    """The connector's settings and pooled client (the same as its actions use), one call, AWS's answer;
    with ``FLOOR_ACTION=connector``, the connector's own action instead."""
    if os.environ.get("FLOOR_ACTION") == "connector":
        return connector_action(self, msg, cfg, snapshot)
    return {"body": client_for(settings_for(cfg)).call(OPERATION, msg["body"]).data}


def _connector_action() -> Any:
    """The connector's own Batch Meter Usage ``process``, loaded by its path (this module has the same name)."""
    path = ROOT / "actions" / "batchMeterUsage.py"
    spec = importlib.util.spec_from_file_location("_connector_batchMeterUsage", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.process


connector_action = _connector_action()
