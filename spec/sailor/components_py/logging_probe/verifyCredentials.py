"""Verifier that logs through its own module logger and the root logger (service mode)."""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)


def verify(self: Any, credentials: dict[str, Any]) -> dict[str, Any]:
    log.info("probe verifier info with key %s", credentials.get("apiKey"))
    logging.warning("probe verifier root warning")  # noqa: LOG015 - the root logger on purpose
    return {"verified": True}
