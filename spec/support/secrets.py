"""Independent checks that a text does not hold a secret in an encoded form (the code under test lists the
forms it masks; these decode instead)."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable


def base64_leaks(text: str, secrets: Iterable[str]) -> list[str]:
    """The ``secrets`` that a base64 run of ``text`` holds, decoded (standard or URL-safe alphabet, from any of
    the 4 character offsets), but for their first and last 2 bytes (what a masked encoding may keep); only
    secrets of 8 bytes or more count."""
    inners = {secret: secret.encode("utf-8")[2:-2] for secret in secrets if len(secret.encode("utf-8")) >= 8}
    if not inners:
        return []
    found: set[str] = set()
    for run in set(re.findall(r"[A-Za-z0-9+/_-]{8,}", text)):
        standard = run.translate(_URL_SAFE_TO_STANDARD)
        for start in range(4):
            decoded = base64.b64decode(standard[start:][: (len(standard) - start) // 4 * 4])
            found.update(secret for secret, inner in inners.items() if inner in decoded)
    return sorted(found)


_URL_SAFE_TO_STANDARD = str.maketrans("-_", "+/")

