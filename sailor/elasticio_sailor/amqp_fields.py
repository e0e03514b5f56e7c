"""AMQP field tables that no delivery can break: a tolerant decoder for incoming message headers.

pika 1.3/1.4's decoder (``pika/data.py``, ``decode_value``) has three problems with headers other
clients send:

* ``f``/``d`` (float/double) values are truncated to integers (``long(...)``): amqplib, the Node
  sailor's client, sends every non-integer JavaScript number as a double, so ``1.5`` arrived as ``1``;
* a ``T`` (timestamp) value that ``datetime`` cannot represent (e.g. written in milliseconds instead of
  seconds) raises ``ValueError`` inside the frame parser, and a very deeply nested table raises
  ``RecursionError`` there. Either error drops the whole connection; the broker redelivers the message
  on the next connection and it drops that one too — an endless reconnect loop that never settles it.

``TolerantProperties`` replaces pika's content-header properties class: headers are decoded by
``decode_table`` below (doubles kept, out-of-range timestamps kept as ``AmqpTimestamp`` with their raw
value, nesting bounded by ``MAX_DEPTH``); if the table still cannot be decoded, the other properties are
decoded as usual, ``headers`` is ``None`` and ``undecodable`` names the reason, so the transport can
reject that one delivery with a clear log line (see ``amqp.AmqpTransport._on_message``).
"""

from __future__ import annotations

import copy
import decimal
import struct
from datetime import UTC, datetime
from typing import Any

import pika
import pika.spec
from pika import data as pika_data

MAX_DEPTH = 128  # nested tables/arrays in one header value (real headers use one or two levels; pika
# itself fails near 500, and RabbitMQ refuses frames nested about 550 deep)


class AmqpTimestamp(int):
    """A ``T`` field whose value is no representable date (seconds since 1970): kept as its raw number
    and encoded back as a ``T`` field unchanged."""


class HeaderDecodeError(ValueError):
    """The header table of a delivery cannot be decoded."""


_UNPACK = {
    b"b": (">b", 1), b"B": (">B", 1), b"U": (">h", 2), b"u": (">H", 2), b"s": (">h", 2),
    b"I": (">i", 4), b"i": (">I", 4), b"L": (">q", 8), b"l": (">q", 8), b"f": (">f", 4), b"d": (">d", 8),
}


def decode_table(encoded: bytes, offset: int, depth: int = 0) -> tuple[dict[str, Any], int]:
    """A field table at ``offset`` (length-prefixed) → (dict, offset after it); like pika's, but see above."""
    if depth > MAX_DEPTH:
        raise HeaderDecodeError(f"header table nested deeper than {MAX_DEPTH} levels")
    size = struct.unpack_from(">I", encoded, offset)[0]
    offset += 4
    limit = offset + size
    if limit > len(encoded):
        raise HeaderDecodeError("header table longer than the frame")
    out: dict[str, Any] = {}
    while offset < limit:
        # the key (a short string) and the most common value type, ``S`` (long string), decoded inline as
        # pika_data.decode_short_string and decode_value do (text, or the raw bytes if not UTF-8)
        size = encoded[offset]
        raw_key = encoded[offset + 1:offset + 1 + size]
        offset += 1 + size
        try:
            key: Any = raw_key.decode("utf-8")
        except UnicodeDecodeError:
            key = raw_key
        if encoded[offset:offset + 1] == b"S":
            start = offset + 5
            offset = start + _U32_FROM(encoded, offset + 1)[0]
            raw = encoded[start:offset]
            try:
                out[key] = raw.decode("utf-8")
            except UnicodeDecodeError:
                out[key] = raw
            continue
        out[key], offset = decode_value(encoded, offset, depth)
    return out, offset


_U32_FROM = struct.Struct(">I").unpack_from


def decode_value(encoded: bytes, offset: int, depth: int = 0) -> tuple[Any, int]:
    """One field value (type octet + value) → (value, new offset)."""
    kind = encoded[offset:offset + 1]
    offset += 1
    fmt = _UNPACK.get(kind)
    if fmt is not None:
        value = struct.unpack_from(fmt[0], encoded, offset)[0]
        return value, offset + fmt[1]
    if kind == b"t":
        return bool(encoded[offset]), offset + 1
    if kind in (b"S", b"x"):
        length = struct.unpack_from(">I", encoded, offset)[0]
        offset += 4
        raw = encoded[offset:offset + length]
        if kind == b"S":
            try:
                return raw.decode("utf-8"), offset + length
            except UnicodeDecodeError:
                return raw, offset + length
        return raw, offset + length
    if kind == b"D":
        places = encoded[offset]
        raw_int = struct.unpack_from(">i", encoded, offset + 1)[0]
        return decimal.Decimal(raw_int) * (decimal.Decimal(10) ** -places), offset + 5
    if kind == b"T":
        seconds = struct.unpack_from(">Q", encoded, offset)[0]
        try:
            return datetime.fromtimestamp(seconds, UTC), offset + 8
        except (ValueError, OverflowError, OSError):
            return AmqpTimestamp(seconds), offset + 8
    if kind == b"F":
        return decode_table(encoded, offset, depth + 1)
    if kind == b"A":
        if depth + 1 > MAX_DEPTH:
            raise HeaderDecodeError(f"header table nested deeper than {MAX_DEPTH} levels")
        length = struct.unpack_from(">I", encoded, offset)[0]
        offset += 4
        end = offset + length
        items = []
        while offset < end:
            item, offset = decode_value(encoded, offset, depth + 1)
            items.append(item)
        return items, offset
    if kind == b"V":
        return None, offset
    raise HeaderDecodeError(f"unknown AMQP field type {kind!r}")


def encode_value(pieces: list[bytes], value: Any) -> None:
    """Encode one header value: pika's encoder plus doubles, ``AmqpTimestamp`` and containers of them."""
    if isinstance(value, AmqpTimestamp):
        pieces.append(b"T" + struct.pack(">Q", int(value)))
    elif isinstance(value, float):
        pieces.append(b"d" + struct.pack(">d", value))
    elif isinstance(value, dict):
        pieces.append(b"F")
        pieces.append(encode_table(value))
    elif isinstance(value, list):
        inner: list[bytes] = []
        for item in value:
            encode_value(inner, item)
        body = b"".join(inner)
        pieces.append(b"A" + struct.pack(">I", len(body)) + body)
    else:
        pika_data.encode_value(pieces, value)


def encode_table(table: dict[str, Any]) -> bytes:
    """A length-prefixed field table of arbitrary header values (see ``encode_value``)."""
    pieces: list[bytes] = []
    for key, value in table.items():
        pika_data.encode_short_string(pieces, key)
        encode_value(pieces, value)
    body = b"".join(pieces)
    return struct.pack(">I", len(body)) + body


class TolerantProperties(pika.BasicProperties):
    """Content-header properties whose header table is decoded by ``decode_table``; never raises for the
    headers: an undecodable table gives ``headers = None`` and ``undecodable = <reason>``.

    Encoded the other way round by ``encode_table``: what was decoded goes back out unchanged (doubles as
    ``d``, ``AmqpTimestamp`` as ``T``, as amqplib writes them), where pika's encoder refuses floats and
    sends a raw timestamp as a 64-bit integer. Publishes that copy incoming headers (rebounds) use it.
    """

    undecodable: str | None = None
    headers: dict[str, Any] | None

    def encode(self) -> list[bytes]:
        headers = self.headers
        if headers is None:
            return list(super().encode())
        # pika's encoding of every other property around an empty table, whose place is right after
        # content type and content encoding (AMQP 0-9-1 property order); basic properties have one flag word
        bare = copy.copy(self)
        bare.headers = {}
        pieces = pika.BasicProperties.encode(bare)
        flags, rest = pieces[0], b"".join(pieces[1:])
        at = 0
        if self.content_type is not None:
            at += 1 + rest[at]
        if self.content_encoding is not None:
            at += 1 + rest[at]
        if len(pieces[0]) != 2 or rest[at:at + 4] != b"\x00\x00\x00\x00":  # pragma: no cover - pika changed
            raise ValueError("unexpected property layout from pika's encoder")
        return [flags, rest[:at], encode_table(headers), rest[at + 4:]]

    def decode(self, encoded: bytes, offset: int = 0) -> TolerantProperties:
        flags_at = offset
        flags = struct.unpack_from(">H", encoded, offset)[0]
        if not flags & pika.BasicProperties.FLAG_HEADERS or flags & 1:
            # no headers (or a second flag word, which AMQP 0-9-1 never uses): pika's own decoder
            super().decode(encoded, offset)
            return self
        offset += 2
        content_type = content_encoding = None
        if flags & pika.BasicProperties.FLAG_CONTENT_TYPE:
            content_type, offset = pika_data.decode_short_string(encoded, offset)
        if flags & pika.BasicProperties.FLAG_CONTENT_ENCODING:
            content_encoding, offset = pika_data.decode_short_string(encoded, offset)
        table_at = offset
        table_size = struct.unpack_from(">I", encoded, table_at)[0]
        try:
            headers, after = decode_table(encoded, table_at)
            reason = None
        except (HeaderDecodeError, ValueError, struct.error, IndexError, RecursionError) as exc:
            headers, after, reason = None, 0, f"{type(exc).__name__}: {str(exc)[:200]}"
        has_mode = bool(flags & pika.BasicProperties.FLAG_DELIVERY_MODE)
        if headers is not None and not flags & ~_COMMON_FLAGS and (after < len(encoded) or not has_mode):
            # only what every sailor and platform message carries (content type and encoding, headers,
            # delivery mode): set as pika's BasicProperties.decode would, without a second decoding pass
            # (every other property is None already, as pika's decoder leaves absent ones)
            self.content_type = content_type
            self.content_encoding = content_encoding
            self.headers = headers
            self.delivery_mode = encoded[after] if has_mode else None
            return self
        # the other properties: pika's decoder on the same bytes without the header table
        rest = (struct.pack(">H", flags & ~pika.BasicProperties.FLAG_HEADERS) + encoded[flags_at + 2:table_at]
                + encoded[table_at + 4 + table_size:])
        super().decode(rest, 0)
        self.headers = headers
        self.undecodable = reason
        return self


_COMMON_FLAGS = (pika.BasicProperties.FLAG_CONTENT_TYPE | pika.BasicProperties.FLAG_CONTENT_ENCODING
                 | pika.BasicProperties.FLAG_HEADERS | pika.BasicProperties.FLAG_DELIVERY_MODE)


def install() -> None:
    """Make pika build ``TolerantProperties`` for every content header it parses (idempotent)."""
    pika.spec.props[pika.BasicProperties.INDEX] = TolerantProperties
