"""The connector's transport alone, for ``bench/e2e_flow.py --floor``: one MeteringClient.call per message.

The message body goes to the endpoint as it is and AWS's answer comes back as the result: no validation,
timestamp window, decimal members, isolation, echo matching or summary. The gap between this run and the
connector's is what the connector's own logic costs; the gap to the peer is the sailor plus the transport
(requests + requests-aws4auth). Never use it in a flow: it bills whatever it is given.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # the repository root, for lib/

from lib.client import client_for, settings_for  # noqa: E402
from lib.operations import OPERATIONS  # noqa: E402

OPERATION = OPERATIONS["batchMeterUsage"]


def process(self: Any, msg: dict[str, Any], cfg: dict[str, Any], snapshot: dict[str, Any]) -> dict[str, Any]:
    """The connector's settings and pooled client (the same as its actions use), one call, AWS's answer."""
    return {"body": client_for(settings_for(cfg)).call(OPERATION, msg["body"]).data}
