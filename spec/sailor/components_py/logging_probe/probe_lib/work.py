"""The probe's library module: a module logger, the root logger, ``warnings.warn``, a logged exception."""

from __future__ import annotations

import logging
import warnings
from typing import Any

log = logging.getLogger(__name__)  # "probe_lib.work"


def work(cfg: dict[str, Any], i: Any) -> None:
    """One line per level; the warning quotes the credential, which the sailor must redact."""
    log.debug("probe module debug %s", i)
    log.info("probe module info %s", i)
    log.warning("probe module warning %s with key %s", i, cfg.get("apiKey"))
    logging.info("probe root info %s", i)  # noqa: LOG015 - the root logger on purpose
    logging.getLogger().error("probe root error %s", i)
    warnings.warn(f"probe python warning {i}", UserWarning, stacklevel=1)
    try:
        raise ValueError(f"probe failure {i} for key {cfg.get('apiKey')}")
    except ValueError:
        log.exception("probe module exception %s", i)
