"""The tolerant header decoder: what pika truncates or cannot decode (see elasticio_sailor.amqp_fields)."""

from __future__ import annotations

import struct
from datetime import UTC, datetime

import pika
import pika.exceptions
import pytest
from elasticio_sailor.amqp_fields import AmqpTimestamp, TolerantProperties, decode_table, encode_table
from pika import data as pika_data


def table(*fields: bytes) -> bytes:
    body = b"".join(fields)
    return struct.pack(">I", len(body)) + body


def field(name: str, kind: bytes, payload: bytes) -> bytes:
    return bytes((len(name),)) + name.encode() + kind + payload


def test_given_doubles_and_floats_then_decoded_exactly_where_pika_truncates() -> None:
    raw = table(field("d", b"d", struct.pack(">d", 1.5)), field("f", b"f", struct.pack(">f", 0.25)))
    assert pika_data.decode_table(raw, 0)[0] == {"d": 1, "f": 0}  # pika 1.4.4
    assert decode_table(raw, 0)[0] == {"d": 1.5, "f": 0.25}


def test_given_a_timestamp_in_milliseconds_then_kept_raw_and_encoded_back_unchanged() -> None:
    ms = 1764630000000
    raw = table(field("ms", b"T", struct.pack(">Q", ms)), field("s", b"T", struct.pack(">Q", 1764630000)))
    decoded = decode_table(raw, 0)[0]
    assert decoded["ms"] == ms and isinstance(decoded["ms"], AmqpTimestamp)
    assert decoded["s"] == datetime.fromtimestamp(1764630000, UTC)
    assert encode_table(decoded) == raw


def test_given_undecodable_headers_then_the_other_properties_survive_and_the_reason_is_named() -> None:
    props = pika.BasicProperties(content_type="application/json", headers={"a": 1}, delivery_mode=2,
                                 correlation_id="c-1", timestamp=1764630000000, app_id="app")
    encoded = b"".join(props.encode())
    good = TolerantProperties().decode(encoded)
    assert (good.headers, good.correlation_id, good.timestamp, good.undecodable) == (
        {"a": 1}, "c-1", 1764630000000, None)
    poisoned = encoded.replace(b"\x01aI", b"\x01aZ")  # an unknown field type
    bad = TolerantProperties().decode(poisoned)
    assert bad.headers is None and bad.undecodable is not None and "unknown AMQP field type" in bad.undecodable
    assert (bad.content_type, bad.delivery_mode, bad.correlation_id, bad.timestamp, bad.app_id) == (
        "application/json", 2, "c-1", 1764630000000, "app")


PROPERTY_VALUES = {"content_type": "application/json", "content_encoding": "utf8", "delivery_mode": 2,
                   "priority": 3, "correlation_id": "corr", "reply_to": "reply.rk", "expiration": "100",
                   "message_id": "m-1", "timestamp": 1_795_765_021, "type": "t", "user_id": "guest",
                   "app_id": "app", "cluster_id": "cl"}


@pytest.mark.parametrize(
    "present",
    [(), ("content_type",), ("content_type", "content_encoding", "delivery_mode"), ("delivery_mode",),
     ("content_encoding",), ("content_type", "content_encoding", "delivery_mode", "reply_to"),
     ("priority", "expiration", "timestamp"), tuple(PROPERTY_VALUES)],
)
def test_given_headers_and_any_other_properties_then_every_property_decodes_as_pika_does(
    present: tuple[str, ...],
) -> None:
    headers = {"messageId": "m", "n": 7, "ok": True, "nested": {"a": "b"}}
    encoded = b"".join(pika.BasicProperties(headers=headers, **{k: PROPERTY_VALUES[k] for k in present}).encode())
    expected, got = pika.BasicProperties().decode(encoded), TolerantProperties().decode(encoded)
    for name in PROPERTY_VALUES:
        assert getattr(got, name) == getattr(expected, name), name
    assert got.headers == headers == expected.headers and got.undecodable is None


def test_given_a_truncated_property_set_then_it_fails_or_decodes_as_before_the_one_pass_decoding() -> None:
    # a frame cut short inside the properties: pika's decoder raises struct.error for the fields after the
    # header table, and the one-pass path must not turn that into a different error or a silent value
    encoded = b"".join(pika.BasicProperties(headers={"a": "bcd", "n": 7}, delivery_mode=2,
                                            content_type="x").encode())
    for cut in range(len(encoded)):
        try:
            got = TolerantProperties().decode(encoded[:cut])
        except struct.error:
            continue
        assert got.delivery_mode is None or got.undecodable is not None, cut
    full = TolerantProperties().decode(encoded)
    assert (full.headers, full.delivery_mode, full.content_type) == ({"a": "bcd", "n": 7}, 2, "x")


@pytest.mark.parametrize(
    "present",
    [(), ("content_type",), ("content_type", "content_encoding", "delivery_mode"), ("content_encoding",),
     ("priority", "expiration", "timestamp"), tuple(PROPERTY_VALUES)],
)
def test_given_headers_pika_can_encode_then_tolerant_properties_encode_byte_identical(
    present: tuple[str, ...],
) -> None:
    headers = {"messageId": "m", "n": 7, "big": 2**40, "ok": True, "nested": {"a": ["b", 1]},
               "at": datetime.fromtimestamp(1764630000, UTC)}
    values = {k: PROPERTY_VALUES[k] for k in present}
    assert (b"".join(TolerantProperties(headers=headers, **values).encode())
            == b"".join(pika.BasicProperties(headers=headers, **values).encode()))


def test_given_doubles_and_raw_timestamps_then_tolerant_properties_encode_them_as_amqplib_does() -> None:
    # what a rebound copies from its input: pika refuses the float and sends the raw timestamp as 'l'
    ms = AmqpTimestamp(1764630000000)
    headers = {"ratio": 1.5, "sentAt": ms, "nested": {"share": 0.25}}
    with pytest.raises(pika.exceptions.UnsupportedAMQPFieldException):
        pika.BasicProperties(headers={"ratio": 1.5}).encode()
    props = TolerantProperties(headers=headers, content_type="application/json", expiration="15000",
                               delivery_mode=1, correlation_id="c-1")
    encoded = b"".join(props.encode())
    assert b"\x06sentAtT" + struct.pack(">Q", ms) in encoded
    assert b"\x05ratiod" + struct.pack(">d", 1.5) in encoded
    got = TolerantProperties().decode(encoded)
    assert got.headers == headers and isinstance(got.headers["sentAt"], AmqpTimestamp)
    assert (got.content_type, got.expiration, got.delivery_mode, got.correlation_id) == (
        "application/json", "15000", 1, "c-1")
