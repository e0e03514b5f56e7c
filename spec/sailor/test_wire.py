"""The fast property encoder is byte-identical to pika's and keeps AMQP integer types
(docs/platform-contract.md §4.5)."""

from __future__ import annotations

import struct
from typing import Any

import pika
import pytest
from elasticio_sailor.wire import MessageProperties, encode_table
from pika import data as pika_data


@pytest.mark.parametrize(
    "headers",
    [
        {"messageId": "m", "start": 1795765021517, "protocolVersion": 1, "x-eio-error-response": True},
        {"ü-key": "wört", "neg": -5, "big": 2**31, "small": -(2**31), "f": False},
        {"nested": {"a": 1}, "list": [1, "x"], "bytes": b"raw"},
        {},
    ],
)
def test_given_headers_when_encoding_then_same_bytes_as_pika(headers: dict[str, Any]) -> None:
    pieces: list[bytes] = []
    pika_data.encode_table(pieces, headers)
    assert encode_table(headers) == b"".join(pieces)
    fast = MessageProperties(content_type="application/json", content_encoding="utf8", delivery_mode=1,
                             headers=headers)
    slow = pika.BasicProperties(content_type="application/json", content_encoding="utf8", delivery_mode=1,
                                headers=headers)
    assert b"".join(fast.encode()) == b"".join(slow.encode())


def test_given_integers_when_encoding_then_amqp_integer_types_not_strings() -> None:
    table = encode_table({"protocolVersion": 2, "end": 1795765021520})
    assert b"protocolVersion" + b"I" + struct.pack(">i", 2) in table
    assert b"end" + b"l" + struct.pack(">q", 1795765021520) in table


def test_given_other_properties_when_encoding_then_pika_fallback_is_used() -> None:
    props = MessageProperties(headers={"a": "b"}, expiration="15000", priority=1)
    ref = pika.BasicProperties(headers={"a": "b"}, expiration="15000", priority=1)
    assert b"".join(props.encode()) == b"".join(ref.encode())
