"""The emulator's RSA key and the PS256 JWTs RegisterUsage returns."""

from __future__ import annotations

import base64
import json
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa


def b64url(data: bytes) -> str:
    """Unpadded base64url, as JWTs use."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class JwtSigner:
    """Signs JWTs with RSASSA-PSS / SHA-256 (``alg: PS256``) using a key generated at start-up."""

    def __init__(self, key_size: int = 2048) -> None:
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=key_size)

    def public_key_pem(self) -> str:
        """The public key as a PEM ``PUBLIC KEY`` (SubjectPublicKeyInfo) block."""
        return self._key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode("ascii")

    def sign(self, claims: dict[str, Any], key_version: int) -> str:
        """A compact JWS of ``claims``; the header names the key version as ``kid``."""
        header = {"alg": "PS256", "typ": "JWT", "kid": str(key_version)}
        signing_input = (
            b64url(json.dumps(header, separators=(",", ":")).encode("utf-8"))
            + "."
            + b64url(json.dumps(claims, separators=(",", ":")).encode("utf-8"))
        )
        signature = self._key.sign(
            signing_input.encode("ascii"),
            padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
            hashes.SHA256(),
        )
        return signing_input + "." + b64url(signature)
