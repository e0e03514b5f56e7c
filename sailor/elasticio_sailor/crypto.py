"""Message payload encryption: AES-256-CBC, PKCS#7, key = SHA-256(password), IV = the IV string's bytes.

Protocol version 1 puts base64 text on the wire, version 2 the raw ciphertext. JSON is serialised like
``JSON.stringify`` (compact, key order kept, non-ASCII unescaped) so ciphertexts match the Node sailor's
byte for byte.

Per-message cost: creating an OpenSSL cipher context (``Cipher.encryptor()``/``decryptor()``) cost more
than the AES work on a typical message and showed up in the sailor's profiles. Each thread therefore keeps
one long-lived context per direction and uses CBC's definition (NIST SP 800-38A §6.2) to start every
message at the configured IV:

* decrypt: ``P_i = D_K(C_i) XOR C_{i-1}`` with ``C_0 = IV`` — one ECB decryption of the whole ciphertext
  (ECB keeps no state between calls), XORed with ``IV || C_1 … C_{n-1}``;
* encrypt: a running CBC encryptor chains from the last ciphertext block ``L`` it produced. Feeding it the
  block ``D_K(IV) XOR L`` first outputs ``E_K(D_K(IV)) = IV`` and leaves the chain at ``IV``; that block is
  dropped and the message's blocks follow exactly as from a fresh context. ``D_K(IV)`` is computed once.

The output is the same bytes as a fresh ``Cipher(AES(key), CBC(iv))`` context per message (tested).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import threading
from typing import Any

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

try:  # orjson is ~5x faster and produces the same compact text for JSON data
    import orjson

    def dumps(obj: Any) -> bytes:
        """Compact UTF-8 JSON, like JSON.stringify."""
        try:
            return orjson.dumps(obj)
        except TypeError:
            # orjson refuses what json accepts (e.g. ints beyond 64 bits, non-str keys, lone surrogates).
            return _std_dumps(obj)

    def loads(data: bytes | str) -> Any:
        """Parse JSON text or UTF-8 bytes."""
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            # orjson refuses what JSON.parse accepts: a lone UTF-16 surrogate escape ("\ud83d", which is what
            # JSON.stringify writes for a JS string cut in the middle of an emoji)
            return _std_loads(data)

except ImportError:  # pragma: no cover - orjson is a declared dependency

    def dumps(obj: Any) -> bytes:
        """Compact UTF-8 JSON, like JSON.stringify."""
        return _std_dumps(obj)

    def loads(data: bytes | str) -> Any:
        """Parse JSON text or UTF-8 bytes."""
        return _std_loads(data)


def _std_dumps(obj: Any) -> bytes:
    """The standard library's compact JSON. A string holding a lone surrogate cannot be UTF-8: then every
    non-ASCII character is written as a ``\\uXXXX`` escape, as JSON.stringify writes the lone surrogate."""
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def _std_loads(data: bytes | str) -> Any:
    """The standard library's parser; bytes that are not UTF-8 are read as Node's Buffer#toString reads them
    (each invalid sequence becomes U+FFFD)."""
    return json.loads(data.decode("utf-8", "replace") if isinstance(data, (bytes, bytearray)) else data)


class DecryptError(ValueError):
    """The payload could not be decoded, decrypted or parsed (text never includes key material)."""


class MessageCipher:
    """Encrypts and decrypts message payloads with one password/IV pair."""

    def __init__(self, password: str | None, iv: str | None) -> None:
        self._key = hashlib.sha256(password.encode("utf-8")).digest() if password else None
        self._iv = iv.encode("utf-8") if iv else b""
        if self._key is not None and len(self._iv) != 16:
            raise ValueError("Invalid initialization vector: must be 16 bytes in UTF-8")
        # immutable Cipher objects; the per-thread contexts made from them live in self._local
        self._cipher = Cipher(algorithms.AES(self._key), modes.CBC(self._iv)) if self._key else None
        self._ecb = Cipher(algorithms.AES(self._key), modes.ECB()) if self._key else None
        self._iv_int = int.from_bytes(self._iv, "big")
        self._d_iv = 0  # D_K(IV) as an integer
        if self._ecb is not None:
            self._d_iv = int.from_bytes(self._ecb.decryptor().update(self._iv), "big")
        self._local = threading.local()

    def _encryptor(self) -> tuple[Any, list[bytes]]:
        """This thread's running CBC encryptor and a one-item list holding its last output block."""
        state = getattr(self._local, "enc", None)
        if state is None:
            assert self._cipher is not None
            state = self._local.enc = (self._cipher.encryptor(), [self._iv])
        return state  # type: ignore[no-any-return]

    def _ecb_decryptor(self) -> Any:
        dec = getattr(self._local, "dec", None)
        if dec is None:
            assert self._ecb is not None
            dec = self._local.dec = self._ecb.decryptor()
        return dec

    # -- bytes level ------------------------------------------------------------------------
    def encrypt_bytes(self, plaintext: bytes) -> bytes:
        """Raw ciphertext of ``plaintext`` (the plaintext itself if no password is set, like Node)."""
        if self._cipher is None:
            return plaintext
        pad = 16 - len(plaintext) % 16
        padded = plaintext + bytes((pad,)) * pad
        enc, last = self._encryptor()
        try:
            if last[0] == self._iv:
                out = enc.update(padded)
            else:
                reset = (self._d_iv ^ int.from_bytes(last[0], "big")).to_bytes(16, "big")
                out = enc.update(reset + padded)[16:]
        except BaseException:
            self._local.enc = None  # chain state unknown: the next message starts a fresh context
            raise
        last[0] = out[-16:]
        return out

    def decrypt_bytes(self, ciphertext: bytes) -> bytes:
        """Plaintext of a raw ciphertext; DecryptError on bad length or padding."""
        if self._cipher is None:
            return ciphertext
        if not ciphertext or len(ciphertext) % 16:
            raise DecryptError("Failed to decrypt message: bad ciphertext length")
        blocks = self._ecb_decryptor().update(ciphertext)
        size = len(ciphertext)
        # XOR with IV || C_1 … C_{n-1}: the shifted ciphertext as one integer, the IV in its top block
        chain = (self._iv_int << (8 * (size - 16))) | (int.from_bytes(ciphertext, "big") >> 128)
        data = (int.from_bytes(blocks, "big") ^ chain).to_bytes(size, "big")
        pad = data[-1]
        if not 1 <= pad <= 16 or data[-pad:] != bytes((pad,)) * pad:
            raise DecryptError("Failed to decrypt message: bad padding")
        return data[:-pad]

    # -- message level ----------------------------------------------------------------------
    def encrypt(self, obj: Any, protocol_version: int = 1) -> bytes:
        """The AMQP body for ``obj``: base64 text for protocol 1, raw ciphertext for 2."""
        raw = self.encrypt_bytes(dumps(obj))
        return base64.b64encode(raw) if protocol_version < 2 else raw

    def encrypt_b64(self, obj: Any) -> str:
        """Base64 text of the encrypted JSON of ``obj`` (error fields, http replies)."""
        return base64.b64encode(self.encrypt_bytes(dumps(obj))).decode("ascii")

    def decrypt(self, body: bytes, protocol_version: int = 1) -> Any:
        """Parse an AMQP body written with ``protocol_version`` back into a JSON value."""
        if protocol_version < 2:
            try:
                body = base64.b64decode(body, validate=False)
            except (binascii.Error, ValueError) as exc:
                raise DecryptError("Failed to decrypt message: bad base64") from exc
        plain = self.decrypt_bytes(body)
        try:
            return loads(plain)
        except ValueError as exc:
            raise DecryptError("Failed to decrypt message: not JSON") from exc
