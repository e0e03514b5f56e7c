"""Keep secrets out of log lines: a filter built from the schema's secret fields and the live values."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from .schema import secret_fields

MASK = "***"
_MIN_SECRET_LENGTH = 4  # shorter strings would mask ordinary words
# Secrets learnt at run time (role session keys and tokens, the web-identity token): every filter masks them.
_RUNTIME: set[str] = set()


def register_secrets(values: Iterable[str]) -> None:
    """Make every :class:`SecretFilter` (and :func:`scrub_known`) mask these values from now on."""
    _RUNTIME.update(v for v in values if isinstance(v, str) and len(v) >= _MIN_SECRET_LENGTH)


def scrub_known(text: str) -> str:
    """``text`` with every run-time secret masked (for error texts built from a third party's message)."""
    for secret in sorted(_RUNTIME, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    return text


class SecretFilter(logging.Filter):
    """Replaces every known secret value in a record's rendered message (and its args)."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def add(self, values: Iterable[str]) -> None:
        """Register more secret values."""
        self.secrets.update(v for v in values if isinstance(v, str) and len(v) >= _MIN_SECRET_LENGTH)

    def scrub(self, text: str) -> str:
        """``text`` with every secret masked (longest first, so overlapping secrets mask fully)."""
        for secret in sorted(self.secrets | _RUNTIME, key=len, reverse=True):
            if secret in text:
                text = text.replace(secret, MASK)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        """Render the message, mask it, and drop the args so handlers cannot re-render them."""
        if self.secrets or _RUNTIME:
            try:
                message = record.getMessage()
            except (TypeError, ValueError):
                message = str(record.msg)
            record.msg, record.args = self.scrub(message), None
            if record.exc_text:
                record.exc_text = self.scrub(record.exc_text)
        return True


def secret_values(cfg: dict[str, Any]) -> list[str]:
    """The values of the fields schemas/config.json marks secret."""
    return [str(cfg[name]) for name in secret_fields() if cfg.get(name)]


def guard(logger: Any, values: Iterable[str]) -> None:
    """Install (once) a :class:`SecretFilter` on ``logger`` and register ``values`` with it."""
    if not isinstance(logger, logging.Logger):
        return
    existing = next((f for f in logger.filters if isinstance(f, SecretFilter)), None)
    if existing is None:
        existing = SecretFilter()
        logger.addFilter(existing)
    existing.add(values)
