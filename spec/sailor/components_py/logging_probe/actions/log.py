"""Log action: the component logs through ``logging.getLogger(__name__)`` loggers and the root logger,
never through ``self.logger`` — as a component written the usual Python way does (lib/client.py)."""

from __future__ import annotations

import logging
from typing import Any

from probe_lib.work import work

log = logging.getLogger(__name__)
log.info("probe action module loaded")  # at import time, before any message


def process(self: Any, msg: dict[str, Any], cfg: dict[str, Any], snapshot: dict[str, Any]) -> dict[str, Any]:
    """Log the probe lines for ``msg["body"]["i"]``; return ``{"body": {"done": i}}``."""
    body = msg.get("body") or {}
    work(cfg, body.get("i"))
    return {"body": {"done": body.get("i")}}
