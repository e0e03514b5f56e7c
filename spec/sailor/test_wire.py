"""The fast property and frame encoders are byte-identical to pika's and keep AMQP integer types
(docs/platform-contract.md §4.5)."""

from __future__ import annotations

import struct
from typing import Any

import pika
import pika.frame
import pika.spec
import pytest
from elasticio_sailor.amqp import _Publish
from elasticio_sailor.wire import MessageProperties, ack_frame, encode_table, publish_frames, reject_frame
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


def pika_publish_frames(
    channel: int, body_max: int, exchange: str, routing_key: str, body: bytes, props: pika.BasicProperties,
    mandatory: bool,
) -> tuple[bytes, int]:
    """What pika's Connection._send_message marshals for one basic_publish."""
    frames = [pika.frame.Method(channel, pika.spec.Basic.Publish(exchange=exchange, routing_key=routing_key,
                                                                 mandatory=mandatory)).marshal(),
              pika.frame.Header(channel, len(body), props).marshal()]
    frames += [pika.frame.Body(channel, body[i:i + body_max]).marshal() for i in range(0, len(body), body_max)]
    return b"".join(frames), len(frames)


@pytest.mark.parametrize("size", [0, 1, 300, 131_064, 131_065, 400_000])
@pytest.mark.parametrize("mandatory", [True, False])
def test_given_a_publish_when_building_its_frames_then_same_bytes_and_frame_count_as_pika(
    size: int, mandatory: bool
) -> None:
    props = MessageProperties(content_type="application/json", content_encoding="utf8", delivery_mode=2,
                              headers={"messageId": "m-1", "start": 1795765021517, "retry": 2})
    body = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    expected = pika_publish_frames(7, 131_064, "exchange-ü", "flow.step.message", body, props, mandatory)
    encoded = b"".join(props.encode())
    assert publish_frames(7, 131_064, "exchange-ü", "flow.step.message", body, encoded, mandatory) == expected


def test_given_a_short_string_overflow_when_building_frames_then_pika_path_is_asked_for() -> None:
    props = b"".join(MessageProperties(headers={}).encode())
    assert publish_frames(1, 131_064, "e" * 256, "rk", b"{}", props, True) is None
    assert publish_frames(1, 131_064, "e", "ü" * 128, b"{}", props, True) is None


@pytest.mark.parametrize("tag", [1, 65_536, 2**63 - 1])
def test_given_a_delivery_tag_when_building_ack_or_reject_then_same_bytes_as_pika(tag: int) -> None:
    assert ack_frame(3, tag) == pika.frame.Method(3, pika.spec.Basic.Ack(tag)).marshal()
    assert reject_frame(3, tag) == pika.frame.Method(3, pika.spec.Basic.Reject(tag, requeue=False)).marshal()


def test_given_a_publish_encoded_by_its_thread_when_retried_then_it_is_sent_with_the_retry_header() -> None:
    req = _Publish("exchange", "rk", b"{}", MessageProperties(headers={"messageId": "m-1"}), True)
    req.encoded = b"".join(req.properties.encode())  # what AmqpTransport.publish does on the worker
    first = req.encoded
    req.iteration = 1
    req.set_retry_header()  # what a nack or a lost write connection does before publishing again
    assert req.encoded is None  # the I/O thread encodes again, now with the header
    again = b"".join(req.properties.encode())
    assert again != first and req.properties.headers == {"messageId": "m-1", "retry": 1}
