"""A verifier that quotes the credentials in its reason (raised, or returned when ``answer`` is "return"), as
a verifier quoting a service's answer may: the reason posted must have them masked, in every form."""

import base64
import urllib.parse
from typing import Any


def verify(self: Any, credentials: dict[str, Any]) -> Any:
    query = urllib.parse.urlencode({"pin": credentials["pin"], "key": credentials["apiKey"]})
    basic = base64.b64encode(f"user:{credentials['apiKey']}".encode()).decode()
    reason = f"HTTP 401 for https://api.example.com/me?{query} (Authorization: Basic {basic}) with {credentials!r}"
    if credentials.get("answer") == "return":
        return {"verified": False, "reason": reason}
    raise ValueError(reason)
