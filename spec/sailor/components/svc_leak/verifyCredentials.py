"""A verifier whose exception quotes the credentials: the reason posted must have them masked."""

import urllib.parse
from typing import Any


def verify(self: Any, credentials: dict[str, Any]) -> bool:
    query = urllib.parse.urlencode({"pin": credentials["pin"], "key": credentials["apiKey"]})
    raise ValueError(f"HTTP 401 for https://api.example.com/me?{query} with {credentials!r}")
