"""Keep secrets out of log lines: a filter built from the schema's secret fields and the live values."""

from __future__ import annotations

import base64
import functools
import logging
import re
import threading
from collections import deque
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, quote_plus

from .schema import secret_fields

MASK = "***"
_MIN_SECRET_LENGTH = 4  # shorter strings would mask ordinary words
# Secrets learnt at run time (role session keys and tokens, the web-identity token): every filter masks them.
_RUNTIME: set[str] = set()
# Rotating secrets by owner (one credential source, one token file): only the values of its last generations
# stay registered. An expired session's keys are worth nothing, and every form kept costs each masked line and
# each rotation (the sailor recompiles its pattern): without a bound, a container refreshing a session every
# 45 minutes would mask ever more slowly, and each refresh would hold every signer longer.
_GENERATIONS = 2
_OWNED: dict[str, deque[list[str]]] = {}
_RUNTIME_LOCK = threading.Lock()


def _sailor_redactor() -> Any:
    """The sailor's redactor when the connector runs in the sailor; None when it is used as a library."""
    try:
        from elasticio_sailor.logs import REDACTOR
    except ImportError:
        return None
    return REDACTOR


def register_secrets(values: Iterable[str], owner: str | None = None) -> None:
    """Make every :class:`SecretFilter` (and :func:`scrub_known`) mask these values, in every form, from now on;
    and the sailor's redactor too (its log lines, error events and service results), when the connector runs in
    it: these are learnt at run time (session keys and tokens), so its own cfg scan never saw them.

    ``owner`` names where rotating values come from (a session, a token file): of its values, those of its last
    two registrations stay registered, the older ones are dropped (unless another owner holds them too). New
    values are added before old ones are dropped: there is never a moment when a current secret is unmasked."""
    learnt = [value for value in values if isinstance(value, str) and len(value) >= _MIN_SECRET_LENGTH]
    redactor = _sailor_redactor()
    # one lock around both registries: a value dropped by one owner while another registers it stays masked
    with _RUNTIME_LOCK:
        for value in learnt:
            _RUNTIME.update(_forms(value))
        if redactor is not None:
            redactor.add(learnt)
        if owner is None or not learnt:
            return
        generations = _OWNED.setdefault(owner, deque())
        if generations and generations[-1] == learnt:
            return  # the same values again (a source registers each copy it hands out): not a new generation
        generations.append(learnt)
        dropped: list[str] = []
        while len(generations) > _GENERATIONS:
            dropped += generations.popleft()
        kept = {value for held in _OWNED.values() for generation in held for value in generation}
        dropped = [value for value in dropped if value not in kept]
        if not dropped:
            return
        still = set().union(*map(_forms, kept)) if kept else set()
        _RUNTIME.difference_update(set().union(*map(_forms, dropped)) - still)
        if redactor is not None:
            redactor.discard(dropped)


@functools.lru_cache(maxsize=512)  # every message registers its cfg's secrets again: their forms are computed once
def _forms(secret: str) -> frozenset[str]:
    """The ways a secret shows up in a third party's text: as is, stripped, escaped as Python prints it
    (``Invalid header value b'<token>\\n'`` from http.client, ``'\\u2019'`` in a str repr), and
    percent-encoded as a URL or a SigV4 canonical query string carries it (``X-Amz-Security-Token=...%2B...``;
    ``/`` kept or encoded, and the form-encoding of a space), percent-encoded twice (a URL inside a URL's
    query), and base64-encoded (:func:`_base64_cores`)."""
    forms = {secret, secret.strip(), repr(secret)[1:-1], repr(secret.encode("utf-8", "backslashreplace"))[2:-1],
             quote(secret, safe=""), quote(secret, safe="/"), quote_plus(secret, safe=""),
             quote(quote(secret, safe=""), safe="")}
    forms |= _base64_cores(secret.encode("utf-8", "backslashreplace"))
    return frozenset(form for form in forms if len(form) >= _MIN_SECRET_LENGTH)


def _base64_cores(raw: bytes) -> set[str]:
    """Base64 writes each 3 bytes as 4 characters, so inside any base64 text (an HTTP Basic header, a token
    blob) the secret's bytes between its first and last 3-byte boundary always encode the same; there are
    three such cores (the secret may start at any byte of a group), each in the standard and URL-safe
    alphabets. Masking one leaves at most 2 of the secret's bytes encoded on either side. Cores under 8
    characters are left out (they could match ordinary text)."""
    cores = set()
    for skip in (0, 1, 2):
        usable = (len(raw) - skip) // 3 * 3
        if usable >= 6:
            chunk = raw[skip:skip + usable]
            cores |= {base64.b64encode(chunk).decode("ascii"), base64.urlsafe_b64encode(chunk).decode("ascii")}
    return cores


# Characters of the same word (letters, digits and the other characters of keys and tokens): a short secret
# is masked only where none of them touches it, so it is not cut out of other words; punctuation around it
# ("ExternalId k9." at the end of a sentence, "'k9'", "id=k9,") does not protect it.
_WORD_EDGE = "A-Za-z0-9_+-"


def mask_word(text: str, value: str) -> str:
    """``text`` with ``value`` masked wherever it stands as a word of its own (for secrets too short to mask
    everywhere: AWS allows an External ID of 2 characters)."""
    if value not in text:
        return text
    return re.sub(rf"(?<![{_WORD_EDGE}]){re.escape(value)}(?![{_WORD_EDGE}])", MASK, text)


def scrub_known(text: str, also: Iterable[str | None] = ()) -> str:
    """``text`` with every run-time secret, and every value of ``also`` (the configured secrets), masked
    (for error texts built from a third party's message: AWS's, botocore's, an HTTP library's)."""
    secrets = set(_RUNTIME)
    for value in also:
        if isinstance(value, str) and len(value) >= _MIN_SECRET_LENGTH:
            secrets |= _forms(value)
    for secret in sorted(secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    return text


class SecretFilter(logging.Filter):
    """Replaces every known secret value in a record's rendered message (and its args)."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()
        self.words: set[str] = set()  # secrets of 2 or 3 characters: masked as words of their own only

    def add(self, values: Iterable[str]) -> None:
        """Register more secret values (and the forms a third party's text may quote them in)."""
        for value in values:
            if isinstance(value, str) and len(value) >= _MIN_SECRET_LENGTH:
                self.secrets |= _forms(value)
            elif isinstance(value, str) and len(value.strip()) >= 2:
                self.words.add(value.strip())

    def scrub(self, text: str) -> str:
        """``text`` with every secret masked (longest first, so overlapping secrets mask fully)."""
        for secret in sorted(self.secrets | _RUNTIME, key=len, reverse=True):
            if secret in text:
                text = text.replace(secret, MASK)
        for word in self.words:
            text = mask_word(text, word)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        """Render the message, mask it, and drop the args so handlers cannot re-render them; render the
        traceback too (an exception's text may quote a secret) and hand the handlers only its masked text."""
        if self.secrets or self.words or _RUNTIME:
            try:
                message = record.getMessage()
            except (TypeError, ValueError):
                message = str(record.msg)
            record.msg, record.args = self.scrub(message), None
            if record.exc_text:
                record.exc_text = self.scrub(record.exc_text)
            elif record.exc_info:
                rendered = _FORMATTER.formatException(record.exc_info)
                masked = self.scrub(rendered)
                if masked != rendered:  # the exception quotes a secret: handlers get the masked text only
                    record.exc_text, record.exc_info = masked, None
            if record.stack_info:
                record.stack_info = self.scrub(record.stack_info)
        return True


_FORMATTER = logging.Formatter()


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
