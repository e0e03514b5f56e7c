"""Test helpers for the emulator specs: botocore clients and raw signed requests (signed by botocore's own
SigV4 implementation, which is independent of the emulator's verifier)."""

from __future__ import annotations

import http.client
import json
import time
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from metering_emulator.testing import EmulatorServer

ACCESS_KEY = "AKIAEMULATOR0000TEST"
SECRET_KEY = "emulator/Secret+Key/DoNotUseInProduction00"
TEMP_ACCESS_KEY = "ASIAEMULATOR0000TEMP"
TEMP_SECRET_KEY = "emulator/Temp+Secret/DoNotUseInProduction0"
TEMP_TOKEN = "emulator-session-token-0000000000000000"
PRODUCT = "emu-demo-product-0001"
LICENSE_ARN = "arn:aws:license-manager::111122223333:license:l-0123456789abcdef0123456789abcdef"
DEMO_TOKEN = "emu-demo-registration-token-0001"
AUTH_ERRORS = {"MissingAuthenticationTokenException", "IncompleteSignatureException",
               "InvalidSignatureException", "UnrecognizedClientException"}


class Endpoint(Protocol):
    """Anything with the emulator's base URL (an EmulatorServer or a CLI-started process)."""

    url: str


def client(emu: Endpoint, *, access_key: str = ACCESS_KEY, secret_key: str = SECRET_KEY,
           token: str | None = None, region: str = "us-east-1", retries: dict[str, Any] | None = None) -> Any:
    """A real botocore ``meteringmarketplace`` client pointed at the emulator (no retries by default)."""
    return boto3.client(
        "meteringmarketplace", region_name=region, endpoint_url=emu.url,
        aws_access_key_id=access_key, aws_secret_access_key=secret_key, aws_session_token=token,
        config=Config(retries=retries or {"total_max_attempts": 1}, connect_timeout=5, read_timeout=15),
    )


@dataclass
class Reply:
    """A raw HTTP reply."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body decoded as JSON."""
        return json.loads(self.body)

    @property
    def error_type(self) -> str | None:
        """``__type`` of an error body (None for success or a non-JSON body)."""
        try:
            data = self.json()
        except ValueError:
            return None
        return data.get("__type") if isinstance(data, dict) else None


def send(emu: EmulatorServer, method: str, path: str, body: bytes, headers: dict[str, str]) -> Reply:
    """One HTTP request on a fresh connection."""
    parts = urlsplit(emu.url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=15)
    try:
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
    finally:
        conn.close()


def signed(emu: EmulatorServer, operation: str | None, body: Any, *, access_key: str = ACCESS_KEY,
           secret_key: str = SECRET_KEY, token: str | None = None, region: str = "us-east-1",
           service: str = "aws-marketplace", target: str | None = None,
           content_type: str = "application/x-amz-json-1.1", extra: dict[str, str] | None = None,
           drop: tuple[str, ...] = (), path: str = "/", send_path: str | None = None) -> Reply:
    """POST signed with SigV4 by botocore; ``body`` may be bytes, text or a JSON-able object.

    ``path`` is the request target signed (default ``/``; it may carry a query string) and ``send_path``
    the one sent, when it differs. ``extra`` headers are added after signing (so they are unsigned); ``drop``
    removes headers after signing.
    """
    raw = body if isinstance(body, bytes) else (body if isinstance(body, str) else json.dumps(body)).encode()
    headers = {"Content-Type": content_type}
    if target is not None:
        headers["X-Amz-Target"] = target
    elif operation is not None:
        headers["X-Amz-Target"] = f"AWSMPMeteringService.{operation}"
    request = AWSRequest(method="POST", url=emu.url + path, data=raw, headers=headers)
    SigV4Auth(Credentials(access_key, secret_key, token), service, region).add_auth(request)
    prepared = request.prepare()
    out = {k: v for k, v in prepared.headers.items() if k.lower() not in {d.lower() for d in drop}}
    out.update(extra or {})
    return send(emu, "POST", path if send_path is None else send_path, raw, out)


def now() -> int:
    """Wall-clock epoch seconds (the emulator clock when no offset is configured)."""
    return int(time.time())
