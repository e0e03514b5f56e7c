"""No single message can stall a step (real broker): each hostile delivery ends processed or rejected with
a clear log line, the next message is processed, SIGTERM finishes and the log stays bounded.

Hostile deliveries are published with amqplib (``nodepeers/amqp-tool.js``), the Node sailor's own client:
it can write what pika cannot — doubles, timestamps in milliseconds, tables nested a thousand deep.
"""

from __future__ import annotations

import base64
import json
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from spec.sailor.conftest import StartSailor
from spec.sailor.helpers import PlatformSide, SailorProc, wait_until

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "nodepeers" / "amqp-tool.js"


def amqplib(*args: str, stdin: Any = None) -> str:
    proc = subprocess.run(["node", str(TOOL), *args], input=None if stdin is None else json.dumps(stdin),
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def node_publish(platform: PlatformSide, body: Any, headers: dict[str, Any], **extra: Any) -> str:
    """Publish an encrypted message with amqplib; returns its messageId."""
    mid = str(uuid.uuid4())
    h = {"messageId": mid, "threadId": "thread-1", "stepId": "step_1", **headers}
    spec = {"headers": h, "bodyB64": base64.b64encode(platform.cipher.encrypt(body, 1)).decode(), **extra}
    amqplib("publish", platform.amqp_url, platform.queue, stdin=spec)
    return mid


def error_message(platform: PlatformSide, out: Any) -> str:
    return str(platform.cipher.decrypt(json.loads(out.body)["error"].encode(), 1)["message"])


def finish(sailor: SailorProc) -> list[dict[str, Any]]:
    """SIGTERM must end the process cleanly and quickly; returns its log lines."""
    started = time.monotonic()
    assert sailor.terminate(timeout=30) == 0
    assert time.monotonic() - started < 30
    return list(sailor.log_lines())


@pytest.mark.parametrize("reply_to", ["r" * 300, 12345], ids=["300-bytes", "not-a-string"])
def test_given_a_failing_message_with_an_unusable_reply_to_then_error_reject_and_the_step_goes_on(
    platform: PlatformSide, start_sailor: StartSailor, reply_to: Any
) -> None:
    sailor = start_sailor("throw")  # prefetch 1: a stuck message would block the next one
    platform.publish({"body": {}}, {"reply_to": reply_to})
    platform.publish({"body": {}}, {"reply_to": platform.keys["reply"]})
    errors = platform.get("error", 2)
    assert len(errors) == 2
    wait_until(lambda: platform.count(platform.dead) == 2, what="both inputs dead-lettered")
    [reply] = platform.get("reply")  # the second message's error reply, to its usable reply_to
    assert reply.body.decode() == json.loads(errors[1].body)["error"]
    lines = finish(sailor)
    [warning] = [x for x in lines if x["msg"] == "Error reply not sent: reply_to is not a usable routing key"]
    assert ("300 bytes" if isinstance(reply_to, str) else "not a string") in warning["reason"]
    assert not [x for x in lines if x["msg"] == "Publish failed; retrying"]
    assert len(lines) < 30


def test_given_http_reply_with_a_too_long_reply_to_then_error_reject_and_the_step_goes_on(
    platform: PlatformSide, start_sailor: StartSailor
) -> None:
    sailor = start_sailor("http_reply")
    platform.publish({"body": {}}, {"reply_to": "r" * 256})
    platform.publish({"body": {}}, {"reply_to": platform.keys["reply"]})
    [err] = platform.get("error")
    assert "'reply_to' is not usable: routing key is 256 bytes long (AMQP allows 255)" in error_message(platform, err)
    [reply] = platform.get("reply")
    assert platform.cipher.decrypt(reply.body, 1)["statusCode"] == 201
    wait_until(lambda: platform.count(platform.dead) == 1, what="first input dead-lettered")
    finish(sailor)


def test_given_a_header_table_nested_too_deep_then_the_delivery_is_rejected_once_and_the_step_goes_on(
    platform: PlatformSide, start_sailor: StartSailor
) -> None:
    sailor = start_sailor("echo")
    node_publish(platform, {"body": {"n": 1}}, {}, deep=520)  # pika fails (RecursionError) near 500
    platform.publish({"body": {"n": 2}})
    [out] = platform.get("message")
    assert platform.decode(out)["body"] == {"n": 2}
    wait_until(lambda: platform.count(platform.dead) == 1, what="the poisoned delivery dead-lettered")
    lines = finish(sailor)
    [rejected] = [x for x in lines if x["msg"] == "Delivery with undecodable AMQP headers rejected"]
    assert "nested deeper than 128 levels" in rejected["reason"]
    assert not [x for x in lines if "reconnecting" in x["msg"] or "connection failed" in x["msg"]]
    assert len(lines) < 30  # before: the connection dropped and came back hundreds of times a minute


def test_given_timestamps_in_milliseconds_then_the_message_is_processed_and_the_header_kept(
    platform: PlatformSide, start_sailor: StartSailor
) -> None:
    sailor = start_sailor("rebound", ELASTICIO_REBOUND_INITIAL_EXPIRATION="60000")
    ms = 1764630000000  # a date in milliseconds: as seconds it is beyond year 9999
    mid = node_publish(platform, {"body": {"n": 1}}, {"sentAt": {"!": "timestamp", "value": ms}},
                       properties={"timestamp": ms})
    platform.publish({"body": {"n": 2}})
    # the rebound copies the input's headers and properties: both timestamps are sent back unchanged
    rebounds = [json.loads(amqplib("get", platform.amqp_url, platform.out_queue("rebound"), "30000"))
                for _ in range(2)]
    [first] = [r for r in rebounds if r["headers"]["messageId"] == mid]
    # still an AMQP timestamp ('T'), as the Node sailor sends it back (amqplib decodes 'T' as
    # {'!': 'timestamp', value} and encodes that as 'T' again), not a 64-bit integer
    assert first["headers"]["sentAt"] == {"!": "timestamp", "value": ms}
    assert first["headers"]["reboundIteration"] == 1
    assert platform.count(platform.dead) == 0
    lines = finish(sailor)
    assert not [x for x in lines if "reconnecting" in x["msg"] or x["level"] >= 50]


def test_given_non_integer_numbers_in_meta_headers_from_amqplib_then_they_are_forwarded_exactly(
    platform: PlatformSide, start_sailor: StartSailor
) -> None:
    sailor = start_sailor("echo")
    node_publish(platform, {"body": {"n": 1}}, {"x-eio-meta-ratio": 1.5, "x-eio-meta-count": 2,
                                                 "x-eio-meta-nested": {"share": 0.25, "list": [0.5, 3]}})
    out = json.loads(amqplib("get", platform.amqp_url, platform.out_queue("message"), "30000"))
    assert out["headers"]["x-eio-meta-ratio"] == 1.5  # before: 1
    assert out["headers"]["x-eio-meta-count"] == 2
    assert out["headers"]["x-eio-meta-nested"] == {"share": 0.25, "list": [0.5, 3]}
    finish(sailor)


def test_given_non_integer_numbers_in_headers_when_the_message_rebounds_then_they_go_back_as_doubles(
    platform: PlatformSide, start_sailor: StartSailor
) -> None:
    sailor = start_sailor("rebound", ELASTICIO_REBOUND_INITIAL_EXPIRATION="60000")
    mid = node_publish(platform, {"body": {"n": 1}}, {"x-eio-meta-ratio": 1.5,
                                                      "x-eio-meta-nested": {"share": 0.25, "list": [0.5, 3]}})
    out = json.loads(amqplib("get", platform.amqp_url, platform.out_queue("rebound"), "30000"))
    # before: pika could not encode the float, the rebound failed and the input got an error instead
    assert out["headers"]["messageId"] == mid
    assert out["headers"]["x-eio-meta-ratio"] == 1.5
    assert out["headers"]["x-eio-meta-nested"] == {"share": 0.25, "list": [0.5, 3]}
    assert out["headers"]["reboundIteration"] == 1
    assert platform.count("error") == 0
    assert platform.count(platform.dead) == 0
    lines = finish(sailor)
    assert not [x for x in lines if x["level"] >= 50]
