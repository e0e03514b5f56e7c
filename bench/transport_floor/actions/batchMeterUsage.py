"""The connector's transport alone, for ``bench/e2e_flow.py --floor``: one MeteringClient.call per message.

The message body goes to the endpoint as it is and AWS's answer comes back as the result: no validation,
timestamp window, decimal members, isolation, echo matching or summary. The gap between this run and the
connector's is what the connector's own logic costs; the gap to the peer is the sailor plus the transport
(requests + requests-aws4auth). Never use it in a flow: it bills whatever it is given.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # the repository root, for lib/

from lib.client import MeteringClient, Settings  # noqa: E402
from lib.operations import OPERATIONS  # noqa: E402

OPERATION = OPERATIONS["batchMeterUsage"]
_clients: dict[str, MeteringClient] = {}
_lock = threading.Lock()


def process(self: Any, msg: dict[str, Any], cfg: dict[str, Any], snapshot: dict[str, Any]) -> dict[str, Any]:
    with _lock:
        client = _clients.get(cfg["endpointUrl"])
        if client is None:
            settings = Settings.create(cfg["accessKeyId"], cfg["secretAccessKey"], region=cfg["region"],
                                       endpoint_url=cfg["endpointUrl"], session_token=cfg.get("sessionToken"),
                                       calls_per_second=float(cfg.get("callsPerSecond") or 1000))
            client = _clients[cfg["endpointUrl"]] = MeteringClient(settings)
    return {"body": client.call(OPERATION, msg["body"]).data}
