"""Flow-step mode against a real RabbitMQ: the compatibility checks of docs/platform-contract.md §13 (8–25).

Inputs rejected by the sailor are dead-lettered by the listen queue into ``platform.dead``, so every test
can tell an ack (nothing there) from a reject (the input there).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
import types
import uuid
from pathlib import Path
from typing import Any

import pika
import pytest

from spec.sailor.conftest import StartSailor
from spec.sailor.helpers import (
    API_KEY,
    IV,
    PASSWORD,
    FakeApi,
    PlatformSide,
    assert_nothing_leaks,
    wait_until,
)

HEADER_KEYS = {"stepId", "threadId", "messageId", "parentMessageId", "execId", "taskId", "workspaceId",
               "containerId", "userId", "compId", "function", "start", "end", "protocolVersion"}


def idle(platform: PlatformSide) -> None:
    """Wait until the listen queue holds nothing (ready or unacked)."""
    wait_until(lambda: platform.unacked_or_ready() == 0, what="listen queue drained")


def test_given_echo_step_when_message_arrives_then_data_has_node_headers_and_input_is_acked(
    platform: PlatformSide, start_sailor: StartSailor
) -> None:
    sailor = start_sailor("echo", ELASTICIO_ADDITIONAL_VARS_FOR_HEADERS="ELASTICIO_TENANT_ID",
                          ELASTICIO_TENANT_ID="tenant-7")
    mid = platform.publish({"id": "in-1", "body": {"hello": "wörld"}, "headers": {}},
                           {"messageId": "M", "threadId": "T", "X-EIO-META-Foo": "bar", "execId": "other"})
    [out] = platform.get("message")
    assert mid == "M"
    assert platform.decode(out) == {"body": {"hello": "wörld"}, "headers": {}}
    h = out.headers
    assert set(h) == HEADER_KEYS | {"x-eio-meta-foo", "tenantId"}
    assert (h["stepId"], h["threadId"], h["parentMessageId"], h["x-eio-meta-foo"]) == ("step_2", "T", "M", "bar")
    assert (h["execId"], h["taskId"], h["workspaceId"], h["containerId"]) == ("exec1", "flow1", "ws1", "cont1")
    assert (h["userId"], h["compId"], h["function"], h["tenantId"]) == ("user1", "comp1", "echo", "tenant-7")
    assert uuid.UUID(h["messageId"]).version == 4
    assert isinstance(h["start"], int) and isinstance(h["end"], int) and h["end"] >= h["start"]
    assert h["protocolVersion"] == 1
    assert (out.props.content_type, out.props.content_encoding, out.props.delivery_mode) == (
        "application/json", "utf8", 1)
    assert sailor.terminate() == 0
    assert platform.unacked_or_ready() == 0
    assert platform.count(platform.dead) == 0


def test_given_v2_input_and_protocol_2_with_persistence_when_echoing_then_raw_body_and_int_header(
    platform: PlatformSide, start_sailor: StartSailor
) -> None:
    start_sailor("emit_echo", ELASTICIO_PROTOCOL_VERSION="2", ELASTICIO_AMQP_PERSISTENT_MESSAGES="true")
    platform.publish({"body": {"n": 42, "f": 2.5, "outId": "custom-id-1"}}, pv=2)
    [out] = platform.get("message")
    assert out.headers["protocolVersion"] == 2
    assert out.headers["messageId"] == "custom-id-1"
    assert out.props.delivery_mode == 2
    assert platform.cipher.decrypt(out.body, 2) == {"id": "custom-id-1", "body": {"n": 42, "f": 2.5,
                                                                                  "outId": "custom-id-1"},
                                                    "headers": {}}


def test_given_step_document_when_processing_then_component_gets_msg_cfg_snapshot_vars_and_message_id(
    platform: PlatformSide, start_sailor: StartSailor, fake_api: FakeApi
) -> None:
    start_sailor("inspect")
    sent = {"id": "in-2", "body": {"a": 1}, "attachments": {}, "metadata": {"m": 1}}
    platform.publish(sent, {"messageId": "M2", "reply_to": "R"})
    [out] = platform.get("message")
    got = platform.decode(out)["body"]
    assert got["msg"] == {**sent, "headers": {"reply_to": "R"}}
    assert got["cfg"] == {"apiKey": "secret-cfg-value-77", "_account": "acc9"}
    assert got["snapshot"] == {"lastId": 1}
    assert got["vars"] == {"v1": "x"}
    assert got["messageId"] == "M2"
    [step_get] = [r for r in fake_api.requests if r.path == "/v1/tasks/flow1/steps/step_2"]
    assert step_get.method == "GET"
    assert step_get.auth == fake_api.basic_auth()


def test_given_error_then_data_when_processing_then_both_published_and_input_rejected(
    platform: PlatformSide, start_sailor: StartSailor
) -> None:
    start_sailor("error_then_data")
    platform.publish({"body": {}})
    [err] = platform.get("error")
    [data] = platform.get("message")
    assert platform.decode(data)["body"] == {"after": "error"}
    assert "protocolVersion" not in err.headers and isinstance(err.headers["end"], int)
    envelope = json.loads(err.body)
    assert platform.cipher.decrypt(envelope["error"].encode(), 1)["message"] == "first this"
    wait_until(lambda: platform.count(platform.dead) == 1, what="input dead-lettered")


@pytest.mark.parametrize("pv", [1, 2])
def test_given_raising_function_when_processing_then_error_with_input_and_reject(
    platform: PlatformSide, start_sailor: StartSailor, pv: int
) -> None:
    start_sailor("throw")
    sent = {"id": "in-3", "body": {"who": "me"}, "headers": {}}
    platform.publish(sent, pv=pv)
    [err] = platform.get("error")
    envelope = json.loads(err.body)
    assert list(envelope) == ["error", "errorInput"]
    error = platform.cipher.decrypt(envelope["error"].encode(), 1)
    assert (error["name"], error["message"], error["code"]) == ("QuotaExceeded", "quota gone for me", "Q1")
    assert "quota gone for me" in error["stack"]
    assert platform.cipher.decrypt(envelope["errorInput"].encode(), 1) == sent
    wait_until(lambda: platform.count(platform.dead) == 1, what="input dead-lettered")
    assert platform.count("message") == 0


def test_given_rebound_when_processing_then_original_bytes_republished_with_expiration_and_acked(
    platform: PlatformSide, start_sailor: StartSailor
) -> None:
    start_sailor("rebound")
    platform.publish({"body": {"r": 0}}, {"messageId": "m1", "threadId": "t1", "custom": "c"})
    platform.publish({"body": {"r": 2}}, {"messageId": "m2", "reboundIteration": 2})
    first, second = sorted(platform.get("rebound", 2), key=lambda o: o.headers["messageId"])
    assert first.props.expiration == "15000"
    assert first.props.delivery_mode == 1, "the persistence setting, not the persistent input's mode (as Node)"
    assert first.props.content_type == "application/json"
    assert first.headers["reboundIteration"] == 1
    assert first.headers["reboundReason"] == "try later"
    assert first.headers["custom"] == "c" and first.headers["threadId"] == "t1"
    assert platform.cipher.decrypt(first.body, 1) == {"body": {"r": 0}}
    assert second.props.expiration == "60000"
    assert second.headers["reboundIteration"] == 3
    idle(platform)
    assert platform.count(platform.dead) == 0


def test_given_rebound_limit_reached_when_rebounding_then_error_published_and_input_still_acked(
    platform: PlatformSide, start_sailor: StartSailor
) -> None:
    start_sailor("rebound", ELASTICIO_REBOUND_LIMIT="20")
    platform.publish({"body": {}}, {"reboundIteration": 20})
    [err] = platform.get("error")
    error = platform.cipher.decrypt(json.loads(err.body)["error"].encode(), 1)
    assert (error["name"], error["message"]) == ("Error", "Rebound limit exceeded")  # Node: a plain Error
    assert error["reboundReason"] == "try later"  # after Node's keys: the last attempt's reason
    # Node sends it with the outgoing headers as they are (lib/sailor.js onRebound): no ``end`` stamp
    assert "end" not in err.headers and err.headers["start"]
    idle(platform)
    assert platform.count(platform.dead) == 0
    assert platform.count("rebound") == 0


def test_given_rebound_details_past_the_limit_then_the_error_carries_them_as_the_last_word_on_the_message(
    platform: PlatformSide, start_sailor: StartSailor
) -> None:
    start_sailor("rebound", ELASTICIO_REBOUND_LIMIT="2")
    billed = [{"RecordIndex": 0, "MeteringRecordId": "id-0"}]
    platform.publish({"body": {"details": {"billedRecords": billed}}}, {"reboundIteration": 2})
    [err] = platform.get("error")
    error = platform.cipher.decrypt(json.loads(err.body)["error"].encode(), 1)
    assert list(error)[:3] == ["name", "message", "stack"]  # Node's keys first, as Node readers expect
    assert (error["message"], error["reboundReason"], error["billedRecords"]) == (
        "Rebound limit exceeded", "try later", billed)
    idle(platform)
    assert platform.count("rebound") == 0


def test_given_snapshot_events_when_processing_then_plain_json_published_and_next_message_sees_them(
    platform: PlatformSide, start_sailor: StartSailor
) -> None:
    start_sailor("snapshots", step={"snapshot": {}})
    platform.publish({"body": {"ops": [{"event": "snapshot", "payload": {"a": 1}}]}})
    [snap] = platform.get("snapshot")
    assert snap.body == b'{"a":1}'
    assert snap.headers["snapshotEvent"] == "snapshot"
    platform.publish({"body": {"ops": [{"event": "updateSnapshot", "payload": {"b": 2}}]}})
    [update] = platform.get("snapshot")
    assert update.body == b'{"b":2}'
    assert update.headers["snapshotEvent"] == "updateSnapshot"
    platform.publish({"body": {"ops": []}})
    outs = platform.get("message", 3)
    seen = [platform.decode(o)["body"]["snapshot"] for o in outs]
    assert seen == [{}, {"a": 1}, {"a": 1, "b": 2}]
    # a snapshot of another kind is kept as emitted (Node: ``that.snapshot = data``); updates leave it so
    platform.publish({"body": {"ops": [{"event": "snapshot", "payload": [1, 2]},
                                       {"event": "updateSnapshot", "payload": {"c": 3}}]}})
    platform.publish({"body": {"ops": []}})
    outs = platform.get("message", 2)
    assert [platform.decode(o)["body"]["snapshot"] for o in outs] == [{"a": 1, "b": 2}, [1, 2]]


def test_given_routing_key_header_when_emitting_then_published_with_that_key_and_header_removed(
    platform: PlatformSide, start_sailor: StartSailor
) -> None:
    start_sailor("routing")
    platform.publish({"body": {"key": platform.keys["reply"]}})
    [out] = platform.get("reply")
    assert out.routing_key == platform.keys["reply"]
    assert platform.decode(out) == {"body": {"routed": True}, "headers": {"keep": "me"}}
    assert platform.count("message") == 0


def test_given_an_output_no_queue_is_bound_for_when_publishing_then_the_broker_returns_it_as_mandatory(
    platform: PlatformSide, start_sailor: StartSailor
) -> None:
    """Compatibility check 11's mandatory flag, on a real data publish: a routing key nothing is bound to
    makes the broker return the message (basic.return), which only a mandatory publish gets; the sailor
    logs it (Node ignores it) and, as Node, still acks the input."""
    sailor = start_sailor("routing")
    platform.publish({"body": {"key": "no-queue-is-bound-to-this-key"}})
    wait_until(lambda: "returned by the broker (unroutable)" in sailor.log(), what="the returned message logged")
    [line] = [entry for entry in sailor.log_lines() if "unroutable" in entry.get("msg", "")]
    assert line["routingKey"] == "no-queue-is-bound-to-this-key"
    platform.publish({"body": {"key": platform.keys["reply"]}})  # prefetch 1: delivered once the first is acked
    [out] = platform.get("reply")
    assert platform.decode(out)["body"] == {"routed": True}
    assert platform.count(platform.dead) == 0


def test_given_reply_to_when_http_reply_then_base64_reply_with_protocol_1(
    platform: PlatformSide, start_sailor: StartSailor
) -> None:
    start_sailor("http_reply", ELASTICIO_PROTOCOL_VERSION="2")
    platform.publish({"body": {}}, {"reply_to": platform.keys["reply"]})
    [reply] = platform.get("reply")
    assert reply.headers["protocolVersion"] == 1
    assert "end" not in reply.headers
    assert platform.cipher.decrypt(reply.body, 1) == {
        "statusCode": 201, "body": "created", "headers": {"content-type": "text/plain"}}
    base64.b64decode(reply.body, validate=True)
    [data] = platform.get("message")
    assert data.headers["protocolVersion"] == 2


def test_given_no_reply_to_when_http_reply_then_error_and_reject(
    platform: PlatformSide, start_sailor: StartSailor
) -> None:
    start_sailor("http_reply")
    platform.publish({"body": {}})
    [err] = platform.get("error")
    error = platform.cipher.decrypt(json.loads(err.body)["error"].encode(), 1)
    assert error["name"] == "Error" and "reply_to' was not found" in error["message"]
    wait_until(lambda: platform.count(platform.dead) == 1, what="input dead-lettered")
    # the emit raised into process (Node's awaited emit rejects): its return value is not published
    idle(platform)
    assert platform.count("message") == 0 and platform.count("error") == 0


@pytest.mark.parametrize("no_replies", [False, True])
def test_given_reply_to_when_error_then_bare_error_replied_unless_disabled(
    platform: PlatformSide, start_sailor: StartSailor, no_replies: bool
) -> None:
    start_sailor("throw", ELASTICIO_NO_ERROR_REPLIES="true" if no_replies else "false")
    platform.publish({"body": {}}, {"reply_to": platform.keys["reply"]})
    [err] = platform.get("error")
    wait_until(lambda: platform.count(platform.dead) == 1, what="input dead-lettered")
    if no_replies:
        assert platform.count("reply") == 0
        return
    [reply] = platform.get("reply")
    assert reply.body.decode() == json.loads(err.body)["error"]
    assert reply.headers["x-eio-error-response"] is True


def test_given_a_data_rate_limit_when_emitting_eleven_messages_then_they_are_spread_over_ten_intervals(
    platform: PlatformSide, start_sailor: StartSailor
) -> None:
    """Compatibility check 17: DATA_RATE_LIMIT=1 per RATE_INTERVAL=110 ms, 11 emits take at least ~1.1 s (the first
    goes at once, each next one waits an interval). A lower bound only: a loaded machine can only add time."""
    start_sailor("many", ELASTICIO_DATA_RATE_LIMIT="1", ELASTICIO_RATE_INTERVAL="110")
    started = time.monotonic()
    platform.publish({"body": {"n": 11}})
    outs = platform.get("message", 11, timeout=60)
    took = time.monotonic() - started
    assert sorted(platform.decode(o)["body"]["i"] for o in outs) == list(range(11))
    assert took >= 10 * 0.110 - 0.02
    # each emit's ``end`` header is taken before it waits for its turn: ten of them are an interval apart
    ends = sorted(int(o.headers["end"]) for o in outs)
    assert ends[-1] - ends[0] >= 9 * 110 - 20


def test_given_size_limit_when_emitting_bigger_message_then_error_and_reject(
    platform: PlatformSide, start_sailor: StartSailor
) -> None:
    start_sailor("many", ELASTICIO_OUTGOING_MESSAGE_SIZE_LIMIT="1000")
    platform.publish({"body": {"n": 3, "size": 2000, "big": [1]}})
    [err] = platform.get("error")
    error = platform.cipher.decrypt(json.loads(err.body)["error"].encode(), 1)
    size = len(platform.cipher.encrypt({"body": {"i": 1, "pad": "x" * 2000}, "headers": {}}, 1))
    assert (error["name"], error["message"]) == ("Error", f"Outgoing message size {size} exceeds limit of 1000.")
    wait_until(lambda: platform.count(platform.dead) == 1, what="input dead-lettered")
    # as Node's onData (a failed send becomes an error, the emit resolves): the outputs before and after the
    # oversized one are published, and the input is rejected for the error
    outs = platform.get("message", 2)
    assert [platform.decode(o)["body"]["i"] for o in outs] == [0, 2]
    idle(platform)
    assert platform.count("message") == 0 and platform.count("error") == 0


def test_given_passthrough_step_when_emitting_then_incoming_passthrough_plus_own_output(
    platform: PlatformSide, start_sailor: StartSailor
) -> None:
    start_sailor("echo", step={"is_passthrough": True})
    incoming_pt = {"step_1": {"headers": {}, "body": {"first": 1}}}
    platform.publish({"id": "in-1", "body": {"x": 1}, "headers": {}, "passthrough": incoming_pt})
    [out] = platform.get("message")
    assert platform.decode(out)["passthrough"] == {**incoming_pt, "step_2": {"body": {"x": 1}, "headers": {}}}


@pytest.mark.parametrize("concurrency", ["threads", "greenlet"])
def test_given_an_async_process_when_messages_arrive_then_each_is_awaited_emitted_and_acked(
    platform: PlatformSide, start_sailor: StartSailor, concurrency: str
) -> None:
    sailor = start_sailor("async_echo", SAILOR_CONCURRENCY=concurrency, ELASTICIO_RABBITMQ_PREFETCH_SAILOR="3")
    for n in range(3):
        platform.publish({"body": {"n": n}})
    outs = [platform.decode(o)["body"] for o in platform.get("message", 6, timeout=60)]
    assert sorted(outs, key=json.dumps) == sorted([{"early": n} for n in range(3)] + [{"n": n} for n in range(3)],
                                                 key=json.dumps)
    assert platform.count("error") == 0 and platform.count(platform.dead) == 0
    assert sailor.terminate() == 0


@pytest.mark.parametrize("change", ["edit", "drop"])
def test_given_a_component_changing_the_incoming_passthrough_when_emitting_then_the_output_carries_it_unchanged(
    platform: PlatformSide, start_sailor: StartSailor, change: str
) -> None:
    """Node deep-clones the incoming passthrough before ``process`` (lib/sailor.js runExec, origPassthrough)."""
    start_sailor("change_passthrough", step={"is_passthrough": True})
    incoming_pt = {"step_1": {"headers": {}, "body": {"first": 1}}}
    platform.publish({"id": "in-1", "body": {"change": change}, "headers": {}, "passthrough": incoming_pt})
    [out] = platform.get("message")
    assert platform.decode(out)["passthrough"] == {**incoming_pt,
                                                   "step_2": {"body": {"change": change}, "headers": {}}}


def test_given_a_lone_surrogate_escape_from_node_when_processing_then_it_goes_through_unchanged(
    platform: PlatformSide, start_sailor: StartSailor
) -> None:
    """JSON.stringify writes a JS string cut in the middle of an emoji as a lone "\\ud83d" escape and
    JSON.parse reads it back: such a message is processed and emitted, not rejected without a word."""
    start_sailor("echo")
    plain = b'{"body":{"t":"abc\\ud83d","e":"\xc3\xa9"},"headers":{}}'  # Node's bytes for {t: "abc\ud83d", e: "é"}
    platform.publish(None, {"messageId": "lone"}, raw=base64.b64encode(platform.cipher.encrypt_bytes(plain)))
    [out] = platform.get("message")
    assert platform.decode(out)["body"] == {"t": "abc\ud83d", "e": "é"}
    assert platform.count(platform.dead) == 0


def test_given_no_self_passthrough_when_emitting_then_incoming_message_added_under_its_step(
    platform: PlatformSide, start_sailor: StartSailor
) -> None:
    start_sailor("echo", step={"is_passthrough": True}, ELASTICIO_NO_SELF_PASSTRHOUGH="true")
    sent = {"id": "in-1", "body": {"x": 1}, "headers": {}}
    platform.publish(sent, {"stepId": "step_1"})
    [out] = platform.get("message")
    assert platform.decode(out)["passthrough"] == {"step_1": sent}


def test_given_message_without_message_id_when_processing_then_output_published_and_input_acked(
    platform: PlatformSide, start_sailor: StartSailor
) -> None:
    sailor = start_sailor("echo")
    platform.publish({"body": {"n": 1}}, {"messageId": None})
    platform.publish({"body": {"n": 2}})
    outs = platform.get("message", 2)
    assert sorted(platform.decode(o)["body"]["n"] for o in outs) == [1, 2]
    no_parent = [o for o in outs if "parentMessageId" not in o.headers]
    assert len(no_parent) == 1
    idle(platform)
    assert platform.count(platform.dead) == 0
    assert platform.count("error") == 0
    assert sailor.terminate() == 0


def test_given_undecryptable_or_headerless_input_when_consuming_then_rejected_without_output(
    platform: PlatformSide, start_sailor: StartSailor
) -> None:
    start_sailor("echo")
    platform.publish(None, raw=b"definitely not ciphertext")
    platform.publish(None, raw=b'{"plain": "json"}')
    platform.publish({"body": {}}, with_headers=False)
    platform.publish({"body": {"ok": 1}})
    [out] = platform.get("message")
    assert platform.decode(out)["body"] == {"ok": 1}
    wait_until(lambda: platform.count(platform.dead) == 3, what="3 inputs dead-lettered")
    assert platform.count("error") == 0


def test_given_error_input_format_when_consuming_error_envelope_then_decoded_error_and_input(
    platform: PlatformSide, start_sailor: StartSailor
) -> None:
    start_sailor("error_input", ELASTICIO_INPUT_FORMAT="error")
    original = {"body": {"orig": 1}}
    envelope = {"error": platform.cipher.encrypt_b64({"name": "E", "message": "m", "stack": "s"}),
                "errorInput": platform.cipher.encrypt_b64(original)}
    platform.publish(None, {"custom": "h"}, raw=json.dumps(envelope).encode())
    [out] = platform.get("message")
    got = platform.decode(out)["body"]["msg"]
    assert got["body"] == {"error": {"name": "E", "message": "m", "stack": "s"}, "errorInput": original}
    assert got["headers"]["custom"] == "h"


def test_given_an_error_envelope_with_other_members_and_no_error_then_it_is_passed_on_whole_as_node_does(
    platform: PlatformSide, start_sailor: StartSailor
) -> None:
    """Node's _decodeErrorMessage keeps every member of the envelope and decrypts ``error``/``errorInput`` only
    when present: an envelope without ``error`` is still processed, not rejected."""
    start_sailor("error_input", ELASTICIO_INPUT_FORMAT="error")
    original = {"body": {"orig": 2}}
    envelope = {"errorInput": platform.cipher.encrypt_b64(original), "traceId": "t-1"}
    platform.publish(None, {}, raw=json.dumps(envelope).encode())
    [out] = platform.get("message")
    assert platform.decode(out)["body"]["msg"]["body"] == {"errorInput": original, "traceId": "t-1"}
    assert platform.count(platform.dead) == 0


def test_given_prefetch_2_when_two_messages_wait_for_each_other_then_they_run_concurrently(
    platform: PlatformSide, start_sailor: StartSailor, tmp_path: Path
) -> None:
    start_sailor("rendezvous", ELASTICIO_RABBITMQ_PREFETCH_SAILOR="2")
    room = tmp_path / "room"
    room.mkdir()
    for me in ("a", "b"):
        platform.publish({"body": {"dir": str(room), "me": me, "n": 2, "wait": 30}})
    outs = [platform.decode(o)["body"] for o in platform.get("message", 2, timeout=60)]
    assert sorted(outs, key=lambda b: b["me"]) == [{"met": True, "me": "a"}, {"met": True, "me": "b"}]


def test_given_prefetch_1_when_two_messages_wait_for_each_other_then_they_never_meet(
    platform: PlatformSide, start_sailor: StartSailor, tmp_path: Path
) -> None:
    start_sailor("rendezvous")
    room = tmp_path / "room"
    room.mkdir()
    for me in ("a", "b"):
        platform.publish({"body": {"dir": str(room), "me": me, "n": 2, "wait": 1.5}})
    first = platform.decode(platform.get("message", 1, timeout=60)[0])["body"]
    assert first == {"met": False, "me": "a"}


def test_given_a_component_that_emits_end_itself_then_no_warning_and_its_input_is_acked_once(
    platform: PlatformSide, start_sailor: StartSailor
) -> None:
    sailor = start_sailor("emit_echo")
    platform.publish({"body": {"n": 1, "end": True}})
    [out] = platform.get("message")
    assert platform.decode(out)["body"] == {"n": 1, "end": True}
    idle(platform)
    assert sailor.terminate() == 0
    assert not [x for x in sailor.log_lines() if "more than once" in x.get("msg", "")]
    assert platform.count(platform.dead) == 0


def test_given_update_keys_when_emitted_then_account_put_with_keys(
    platform: PlatformSide, start_sailor: StartSailor, fake_api: FakeApi
) -> None:
    fake_api.routes[("PUT", "/v1/accounts/acc9")] = [(200, {})]
    start_sailor("update_keys")
    platform.publish({"body": {"keys": {"token": "new"}}})
    [out] = platform.get("message")
    assert platform.decode(out)["body"] == {"updated": True}
    [put] = [r for r in fake_api.requests if r.method == "PUT"]
    assert put.path == "/v1/accounts/acc9"
    assert json.loads(put.body) == {"keys": {"token": "new"}}
    assert put.auth == fake_api.basic_auth()


def test_given_update_keys_failing_when_emitted_then_error_published_and_input_rejected(
    platform: PlatformSide, start_sailor: StartSailor, fake_api: FakeApi
) -> None:
    fake_api.routes[("PUT", "/v1/accounts/acc9")] = [(403, {"error": "forbidden"})]
    start_sailor("update_keys")
    platform.publish({"body": {"keys": {"token": "new"}}})
    [err] = platform.get("error")
    assert "403" in platform.cipher.decrypt(json.loads(err.body)["error"].encode(), 1)["message"]
    wait_until(lambda: platform.count(platform.dead) == 1, what="input dead-lettered")


def test_given_update_keys_without_an_account_in_cfg_then_nothing_is_put_and_the_message_gets_an_error(
    platform: PlatformSide, start_sailor: StartSailor, fake_api: FakeApi
) -> None:
    # Node's REST client refuses the path without an id; PUT /v1/accounts/ would send the keys elsewhere
    fake_api.routes[("PUT", "/v1/accounts/")] = [(200, {})]
    start_sailor("update_keys", step={"config": {"apiKey": "secret-cfg-value-77"}})
    platform.publish({"body": {"keys": {"token": "new-secret-token"}}})
    [err] = platform.get("error")
    assert "Missing value for parameter '{id}'" in platform.cipher.decrypt(
        json.loads(err.body)["error"].encode(), 1)["message"]
    wait_until(lambda: platform.count(platform.dead) == 1, what="input dead-lettered")
    assert [r for r in fake_api.requests if r.method == "PUT"] == []


def test_given_component_logging_cfg_when_running_then_no_secret_in_any_log_line(
    platform: PlatformSide, start_sailor: StartSailor
) -> None:
    sailor = start_sailor("logs_secrets", step={"config": {"token": "tok-SECRET-1", "apiKey": "cfg-key-SECRET"}},
                          LOG_LEVEL="trace")
    platform.publish({"body": {"private": "body-SECRET-text"}})
    platform.get("message")
    assert sailor.terminate() == 0
    text = sailor.log()
    lines = list(sailor.log_lines())
    assert any("cfg is" in line["msg"] for line in lines)
    for secret in ("tok-SECRET-1", "cfg-key-SECRET", API_KEY, PASSWORD, "body-SECRET-text"):
        assert secret not in text


# pwd: short, under a name no pattern flags, declared "PasswordFieldView" in the steps' component.json;
# token: a backslash and both quotes (they double or get escaped in a repr) and URL-reserved characters
LEAK_CFG = {"pwd": "hunter2", "token": "ab+cd/ef==\\XYZ'\"", "_account": "acc9"}
# the AMQP password as written in the URI (%65 is "e") and as sent to the broker
AMQP_RAW, AMQP_DECODED = "gu%65st", "guest"
LEAK_SECRETS = ("hunter2", LEAK_CFG["token"], IV, PASSWORD, API_KEY, AMQP_RAW, AMQP_DECODED)


def leak_sailor(platform: PlatformSide, start_sailor: StartSailor, **step: Any) -> Any:
    return start_sailor("leak_secrets", step={"config": {**LEAK_CFG, **step}}, wait=not step, LOG_LEVEL="trace",
                        ELASTICIO_AMQP_URI=platform.amqp_url.replace("guest:guest@", f"guest:{AMQP_RAW}@"))


def test_given_component_quoting_every_secret_when_processing_then_no_form_of_any_leaves_the_process(
    platform: PlatformSide, start_sailor: StartSailor
) -> None:
    sailor = leak_sailor(platform, start_sailor)
    platform.publish({"body": {"mode": "error"}})
    platform.publish({"body": {"mode": "rebound"}})
    [err] = platform.get("error")
    [rebound] = platform.get("rebound")
    assert sailor.terminate() == 0
    error = platform.cipher.decrypt(json.loads(err.body)["error"].encode(), 1)
    assert list(error) == ["name", "message", "stack"]  # Node's shape, texts masked
    assert error["name"] == "RuntimeError"
    assert error["message"].startswith("request failed with {'pwd': '***', 'token': ")
    assert "ConnectionError: HTTP 401 for https://api.example.com/v1/items?pwd=***&token=***" in error["stack"]
    reason = rebound.headers["reboundReason"]
    assert reason.startswith("busy: https://api.example.com/v1/items?pwd=***&token=***&iv=***")
    lines = list(sailor.log_lines())
    assert any(x["msg"].startswith("Starting new HTTPS connection") for x in lines)  # debug lines written
    assert any(x["msg"] == "pwd verbatim *** quoted ***" for x in lines)
    assert_nothing_leaks([sailor.log(), *error.values(), reason], LEAK_SECRETS)


def test_given_init_quoting_every_secret_when_starting_then_the_start_up_error_and_log_are_masked(
    platform: PlatformSide, start_sailor: StartSailor
) -> None:
    sailor = leak_sailor(platform, start_sailor, failInit=True)
    assert sailor.wait() == 1
    [err] = platform.get("error")
    error = platform.cipher.decrypt(json.loads(err.body)["error"].encode(), 1)
    assert list(error) == ["name", "message", "stack"]
    assert error["message"].startswith("cannot init: GET https://api.example.com/v1/items?pwd=***&token=***")
    assert "ConnectionError: refused for {'pwd': '***', 'token': " in error["stack"]
    assert_nothing_leaks([sailor.log(), *error.values()], LEAK_SECRETS)


def test_given_idle_sailor_when_sigterm_then_exit_0_and_later_messages_stay_queued(
    platform: PlatformSide, start_sailor: StartSailor
) -> None:
    sailor = start_sailor("echo")
    assert sailor.terminate() == 0
    platform.publish({"body": {}})
    assert platform.unacked_or_ready() == 1
    assert platform.count("message") == 0


def test_given_slow_message_in_flight_when_sigterm_then_output_published_input_acked_exit_0(
    platform: PlatformSide, start_sailor: StartSailor, tmp_path: Path
) -> None:
    sailor = start_sailor("slow")
    marker = tmp_path / "started"
    platform.publish({"body": {"sleep": 2, "marker": str(marker)}})
    wait_until(marker.exists, what="processing started")
    sailor.proc.send_signal(15)
    assert sailor.wait() == 0
    [out] = platform.get("message")
    assert platform.decode(out)["body"]["sleep"] == 2
    assert platform.unacked_or_ready() == 0
    assert platform.count(platform.dead) == 0


def test_given_init_raises_when_starting_then_start_up_error_published_and_exit_1(
    platform: PlatformSide, start_sailor: StartSailor
) -> None:
    sailor = start_sailor("init_fails", wait=False)
    assert sailor.wait() == 1
    [err] = platform.get("error")
    envelope = json.loads(err.body)
    assert list(envelope) == ["error"]
    assert platform.cipher.decrypt(envelope["error"].encode(), 1)["message"] == "OMG. I cannot init"
    assert set(err.headers) == {"execId", "taskId", "workspaceId", "containerId", "userId", "stepId", "compId",
                                "function", "messageId"}
    assert platform.consumers() == 0


def test_given_an_unknown_function_when_starting_then_the_start_up_error_is_named_error_as_node_names_it(
    platform: PlatformSide, start_sailor: StartSailor
) -> None:
    """The sailor's own failures are plain ``Error``s in Node (run.js ``run`` → ``reportError``)."""
    sailor = start_sailor("no_such_function", wait=False)
    assert sailor.wait() == 1
    [err] = platform.get("error")
    error = platform.cipher.decrypt(json.loads(err.body)["error"].encode(), 1)
    assert (error["name"], error["message"]) == (
        "Error", 'Trigger or action "no_such_function" is not found in component.json!')


def test_given_deleted_listen_queue_when_starting_then_exit_1(
    platform: PlatformSide, start_sailor: StartSailor
) -> None:
    platform.ch.queue_delete(platform.queue)
    sailor = start_sailor("echo", wait=False)
    assert sailor.wait() == 1
    assert "BasicConsume" in sailor.log()


def test_given_missing_amqp_uri_when_starting_then_exit_1_before_any_request(
    platform: PlatformSide, start_sailor: StartSailor, fake_api: FakeApi
) -> None:
    sailor = start_sailor("echo", wait=False, ELASTICIO_AMQP_URI="", ELASTICIO_FLOW_ID="")
    assert sailor.wait() == 1
    assert fake_api.requests == []
    [line] = [x for x in sailor.log_lines() if x["level"] == 60]
    assert line["missing"] == ["ELASTICIO_FLOW_ID is missing", "ELASTICIO_AMQP_URI is missing"]


@pytest.mark.parametrize("uri", ["amqp://guest:guest@127.0.0.1:1/", "amqp://guest:amqp-secret-9@host:notaport/"])
def test_given_unreachable_broker_or_bad_uri_when_starting_then_exit_1_without_api_call(
    platform: PlatformSide, start_sailor: StartSailor, fake_api: FakeApi, uri: str
) -> None:
    sailor = start_sailor("echo", wait=False, ELASTICIO_AMQP_URI=uri)
    assert sailor.wait() == 1
    assert fake_api.requests == []
    assert "amqp-secret-9" not in sailor.log()


def test_given_startup_required_when_starting_then_hook_result_stored_and_409_rewrites(
    platform: PlatformSide, start_sailor: StartSailor, fake_api: FakeApi, tmp_path: Path
) -> None:
    path = "/sailor-support/hooks/task/flow1/startup/data"
    fake_api.routes[("POST", path)] = [(409, {"error": "exists"}), (200, {})]
    fake_api.routes[("DELETE", path)] = [(204, None)]
    start_sailor("hooks", ELASTICIO_STARTUP_REQUIRED="1", HOOKS_RECORD_DIR=str(tmp_path))
    calls = [(r.method, r.path) for r in fake_api.requests if r.path == path]
    assert calls == [("POST", path), ("DELETE", path), ("POST", path)]
    bodies = [json.loads(r.body) for r in fake_api.requests if r.method == "POST"]
    assert bodies == [{"subscription": "sub-secret-cfg-value-77"}] * 2
    assert json.loads((tmp_path / "init.json").read_text())["apiKey"] == "secret-cfg-value-77"


# (startup hook result, what Node 2.7.8 POSTs: ``_.isEmpty(result) ? {} : result``, lodash's isEmpty being true
# for null, every number and boolean, and empty strings, lists and objects)
NODE_STARTUP_DATA = [(5, {}), (True, {}), (2.5, {}), (0, {}), (None, {}), ("", {}), ([], {}), ([1], [1]),
                     ({"a": 1}, {"a": 1})]


@pytest.mark.parametrize(("result", "stored"), NODE_STARTUP_DATA)
def test_given_a_startup_hook_result_then_the_stored_data_is_what_node_stores(
    fake_api: FakeApi, result: Any, stored: Any
) -> None:
    from elasticio_sailor.hooks import startup_data_path, store_startup_data

    settings = types.SimpleNamespace(FLOW_ID="flow1", API_URI=fake_api.url, API_USERNAME="u", API_KEY="k",
                                     API_REQUEST_RETRY_ATTEMPTS=1, API_REQUEST_RETRY_DELAY=10)
    path = startup_data_path(settings)  # type: ignore[arg-type]
    fake_api.routes[("POST", path)] = [(409, {"error": "exists"}), (200, {})]
    fake_api.routes[("DELETE", path)] = [(204, None)]
    store_startup_data(settings, result)  # type: ignore[arg-type]
    posts = [json.loads(r.body) for r in fake_api.requests if r.method == "POST"]
    assert posts == [stored, stored]  # the first POST, and the one after the 409's DELETE


@pytest.mark.parametrize("sigterm", [False, True], ids=["left-alone", "sigterm-during-the-hook"])
def test_given_hook_shutdown_mode_when_running_then_get_shutdown_delete_without_amqp(
    platform: PlatformSide, start_sailor: StartSailor, fake_api: FakeApi, tmp_path: Path, sigterm: bool
) -> None:
    # a SIGTERM while the hook runs changes nothing, as in Node (its graceful shutdown has nothing to
    # disconnect in this mode): the hook ends and the startup data is deleted
    path = "/sailor-support/hooks/task/flow1/startup/data"
    fake_api.routes[("GET", path)] = [(200, {"subscription": "sub-1"})]
    fake_api.routes[("DELETE", path)] = [(204, None)]
    sailor = start_sailor("hooks", wait=False, ELASTICIO_HOOK_SHUTDOWN="true", ELASTICIO_AMQP_URI="",
                          HOOKS_RECORD_DIR=str(tmp_path), HOOKS_SHUTDOWN_SLEEP="1.5" if sigterm else "0")
    if sigterm:
        wait_until(lambda: any(r.path == path for r in fake_api.requests), what="the startup data fetched")
    assert (sailor.terminate() if sigterm else sailor.wait()) == 0
    assert [(r.method, r.path) for r in fake_api.requests] == [
        ("GET", "/v1/tasks/flow1/steps/step_2"), ("GET", path), ("DELETE", path)]
    recorded = json.loads((tmp_path / "shutdown.json").read_text())
    assert recorded == {"cfg": {"apiKey": "secret-cfg-value-77", "_account": "acc9"},
                        "data": {"subscription": "sub-1"}}


def test_given_consumer_connection_closed_mid_message_when_redelivered_then_processed_once_and_acked(
    platform: PlatformSide, start_sailor: StartSailor, tmp_path: Path, rabbit: object
) -> None:
    sailor = start_sailor("slow")
    marker = tmp_path / "started"
    platform.publish({"body": {"sleep": 3, "marker": str(marker)}}, {"messageId": "redeliver-me"})
    wait_until(marker.exists, what="processing started")
    close_read_connection(rabbit)
    [out] = platform.get("message", timeout=60)
    assert out.headers["parentMessageId"] == "redeliver-me"
    idle(platform)
    platform.publish({"body": {"sleep": 0}})
    [second] = platform.get("message", timeout=60)
    assert platform.decode(second)["body"] == {"sleep": 0}
    assert platform.count("message") == 0
    assert platform.count(platform.dead) == 0
    assert sailor.terminate() == 0


def test_given_a_rebound_copy_of_a_finished_message_redelivered_after_another_consumer_died_then_it_is_processed(
    platform: PlatformSide, start_sailor: StartSailor, tmp_path: Path
) -> None:
    """A rebound copy keeps the messageId (with the next reboundIteration) and the body. When another replica
    took it and died before settling it, the broker redelivers it (redelivered=True) to this sailor, which
    finished the original: that copy is new work, not the lost-ack redelivery of a finished message, and
    acking it unprocessed would lose it (Node keeps no finished ids at all)."""
    sailor = start_sailor("slow")  # prefetch 1
    platform.publish({"body": {"n": 1, "sleep": 0}}, {"messageId": "m-x"})
    [first] = platform.get("message", timeout=60)
    marker = tmp_path / "busy"
    platform.publish({"body": {"n": 2, "sleep": 3, "marker": str(marker)}}, {"messageId": "m-y"})
    wait_until(marker.exists, what="the second message in processing")
    # the rebound copy of m-x, taken by another consumer (a replica) that dies before settling it
    platform.publish({"body": {"n": 1, "sleep": 0}}, {"messageId": "m-x", "reboundIteration": 1})
    other = pika.BlockingConnection(pika.URLParameters(platform.amqp_url))
    try:
        method, props, _body = other.channel().basic_get(platform.queue, auto_ack=False)
        assert method is not None and props.headers["messageId"] == "m-x"
    finally:
        other.close()  # unsettled: back in the queue, redelivered
    outs = platform.get("message", 2, timeout=60)
    assert sorted(o.headers["parentMessageId"] for o in [first, *outs]) == ["m-x", "m-x", "m-y"]
    assert "settled without reprocessing" not in sailor.log()
    assert platform.count(platform.dead) == 0
    assert sailor.terminate() == 0


def close_read_connection(rabbit: object) -> None:
    """``rabbitmqctl close_connection`` on every ``<host>-read`` connection of the private broker."""
    env = rabbit._env()  # type: ignore[attr-defined]
    ctl = os.path.join(os.path.dirname(env["PATH"].split(os.pathsep)[0]), "sbin", "rabbitmqctl")
    if not os.path.exists(ctl):
        ctl = os.path.join(env["PATH"].split(os.pathsep)[0], "rabbitmqctl")
    node = ["-n", rabbit.node]  # type: ignore[attr-defined]
    listing = subprocess.run([ctl, *node, "list_connections", "pid", "client_properties", "-q"], env=env,
                             capture_output=True, text=True, timeout=60, check=True).stdout
    pids = [line.split("\t")[0] for line in listing.splitlines() if "-read" in line]
    assert pids, listing
    for pid in pids:
        subprocess.run([ctl, *node, "close_connection", pid, "test"], env=env, capture_output=True,
                       timeout=60, check=True)



def test_given_two_sigterms_during_slow_message_when_shutting_down_then_message_finishes_and_exit_0(
    platform: PlatformSide, start_sailor: StartSailor, tmp_path: Path
) -> None:
    sailor = start_sailor("slow")
    marker = tmp_path / "started"
    platform.publish({"body": {"sleep": 2, "marker": str(marker)}})
    wait_until(marker.exists, what="processing started")
    sailor.proc.send_signal(15)
    sailor.proc.send_signal(15)
    platform.publish({"body": {"sleep": 0, "late": True}})
    assert sailor.wait() == 0
    [out] = platform.get("message")
    assert platform.decode(out)["body"]["sleep"] == 2
    assert platform.count(platform.dead) == 0
    # the message sent after the signal was not consumed
    assert platform.unacked_or_ready() == 1
