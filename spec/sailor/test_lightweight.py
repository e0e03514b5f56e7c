"""Lightweight (object-storage) messages in flow-step mode, on a real broker (docs/platform-contract.md §13 check 27).

The object storage is ``spec/support/objectstorage.py`` (the maester API paths, bearer token, injected
failures); ``spec/sailor/interop/test_lightweight_interop.py`` proves that server against the Node
sailor's own client. Components: ``spec/sailor/components/lightweight``.
"""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from elasticio_sailor.objectstorage import OBJECT_ID_HEADER

from spec.sailor.conftest import StartSailor
from spec.sailor.helpers import PlatformSide, SailorProc
from spec.sailor.scripted_http import ScriptedServer, garbled, truncated
from spec.support.objectstorage import ObjectStorageServer

LW = "../lightweight"  # ELASTICIO_COMPONENT_PATH, relative to the sailor's working directory
BIG = {"records": [{"id": f"r-{i}", "text": "Größe ✓"} for i in range(20)]}


@pytest.fixture
def storage() -> Iterator[ObjectStorageServer]:
    with ObjectStorageServer("os-token-" + secrets.token_hex(12), prefix="maester/") as server:
        yield server


def lw_env(storage: ObjectStorageServer, **extra: str) -> dict[str, str]:
    env = {
        "ELASTICIO_COMPONENT_PATH": LW,
        "ELASTICIO_OBJECT_STORAGE_URI": storage.url + "/",  # trailing slash: must still give …/maester/objects
        "ELASTICIO_OBJECT_STORAGE_TOKEN": storage.token,
        "LOG_LEVEL": "trace",
    }
    env.update(extra)
    return env


def stored(platform: PlatformSide, body: Any) -> bytes:
    """What a sailor stores for ``body``: the raw ciphertext of its compact JSON."""
    return platform.cipher.encrypt(body, 2)


def assert_clean_log(proc: SailorProc, storage: ObjectStorageServer) -> None:
    text = proc.log()
    assert storage.token not in text, "the object-storage token must never be logged"
    assert "Größe" not in text, "message bodies are never logged"


def rejected_ids(platform: PlatformSide, count: int) -> list[str]:
    return [str(o.headers.get("messageId")) for o in platform.get(platform.dead, count)]


@pytest.mark.parametrize("pv", [1, 2], ids=["v1", "v2"])
def test_given_references_when_a_message_arrives_then_the_component_gets_the_stored_bodies(
    start_sailor: StartSailor, platform: PlatformSide, storage: ObjectStorageServer, pv: int
) -> None:
    body_id = storage.put(stored(platform, BIG))
    pt_id = storage.put(stored(platform, {"first": "ü"}))
    proc = start_sailor("inspect", **lw_env(storage))
    incoming = {
        "id": "m1", "body": {}, "headers": {OBJECT_ID_HEADER: body_id, "x": 1},
        "passthrough": {"step_0": {"body": {}, "headers": {OBJECT_ID_HEADER: pt_id}},
                        "step_00": {"body": {"inline": True}, "headers": {}}},
    }
    platform.publish(incoming, pv=pv)
    (out,) = platform.get("message")
    msg = platform.decode(out)["body"]["msg"]
    assert msg["body"] == BIG
    assert msg["headers"] == {OBJECT_ID_HEADER: body_id, "x": 1}, "the header stays, as in Node"
    assert msg["passthrough"] == {
        "step_0": {"body": {"first": "ü"}, "headers": {OBJECT_ID_HEADER: pt_id}},
        "step_00": {"body": {"inline": True}, "headers": {}},
    }
    gets = storage.of("GET")
    assert sorted(r.path for r in gets) == sorted(f"/maester/objects/{i}" for i in (body_id, pt_id))
    assert all(r.authorized for r in gets)
    assert {r.headers["x-request-id"] for r in gets} == {"f:flow1;s:step_2;m:"}
    proc.terminate()
    assert platform.count(platform.dead) == 0, "acked"
    assert platform.count("error") == 0
    assert_clean_log(proc, storage)


def test_given_auto_resolve_false_when_a_reference_arrives_then_the_component_gets_it_unresolved(
    start_sailor: StartSailor, platform: PlatformSide, storage: ObjectStorageServer
) -> None:
    body_id = storage.put(stored(platform, BIG))
    start_sailor("inspect_raw", **lw_env(storage))
    platform.publish({"body": {}, "headers": {OBJECT_ID_HEADER: body_id}})
    (out,) = platform.get("message")
    msg = platform.decode(out)["body"]["msg"]
    assert msg["body"] == {} and msg["headers"] == {OBJECT_ID_HEADER: body_id}
    assert storage.requests == []


def test_given_lightweight_off_when_a_passthrough_reference_goes_out_then_its_body_is_downloaded_first(
    start_sailor: StartSailor, platform: PlatformSide, storage: ObjectStorageServer
) -> None:
    """Node's ``onData`` without EMIT_LIGHTWEIGHT_MESSAGE: references left in the passthrough (here the
    step does not resolve them) are downloaded before the message is sent."""
    pt_id = storage.put(stored(platform, {"first": 1}))
    start_sailor("inspect_raw", step={"is_passthrough": True}, **lw_env(storage))
    platform.publish({"body": {"small": 1}, "headers": {},
                      "passthrough": {"step_0": {"body": {}, "headers": {OBJECT_ID_HEADER: pt_id}}}})
    (out,) = platform.get("message")
    data = platform.decode(out)
    assert data["passthrough"]["step_0"] == {"body": {"first": 1}, "headers": {OBJECT_ID_HEADER: pt_id}}
    received = data["body"]["msg"]["passthrough"]["step_0"]
    assert received["body"] == {}, "the component itself saw the unresolved reference"
    assert [r.method for r in storage.requests] == ["GET"]


@pytest.mark.parametrize("pv", [1, 2], ids=["v1", "v2"])
def test_given_lightweight_on_when_a_body_is_above_the_threshold_then_it_is_uploaded_and_referenced(
    start_sailor: StartSailor, platform: PlatformSide, storage: ObjectStorageServer, pv: int
) -> None:
    """docs/platform-contract.md §13 check 27: threshold 10, compact UTF-8 JSON: ``{"a":"ü"}`` (10 bytes) stays inline,
    ``{"a":"üü"}`` (12 bytes) is uploaded as raw ciphertext and replaced by ``{}`` + the header."""
    proc = start_sailor("echo", **lw_env(storage, ELASTICIO_EMIT_LIGHTWEIGHT_MESSAGE="true",
                                         ELASTICIO_OBJECT_STORAGE_SIZE_THRESHOLD="10",
                                         ELASTICIO_PROTOCOL_VERSION=str(pv)))
    platform.publish({"body": {"a": "ü"}, "headers": {}})
    platform.publish({"body": {"a": "üü"}, "headers": {}})
    inline, light = platform.get("message", 2)
    assert platform.decode(inline) == {"body": {"a": "ü"}, "headers": {}}
    message = platform.decode(light)
    assert light.headers["protocolVersion"] == pv
    assert message["body"] == {}
    object_id = message["headers"][OBJECT_ID_HEADER]
    (post,) = storage.of("POST")
    assert post.path == "/maester/objects" and post.authorized
    assert post.headers["content-type"] == "application/json"
    assert post.headers["x-request-id"] == "f:flow1;s:step_2;m:"
    assert storage.objects[object_id].data == post.body == stored(platform, {"a": "üü"})
    proc.terminate()
    assert platform.count(platform.dead) == 0
    assert_clean_log(proc, storage)


def test_given_a_passthrough_step_with_lightweight_on_when_above_the_threshold_then_every_body_is_a_reference(
    start_sailor: StartSailor, platform: PlatformSide, storage: ObjectStorageServer
) -> None:
    """Node's ``onData``: the body and each passthrough body without an id are uploaded (one with an id
    is not uploaded again), then the step's own passthrough entry is the lightweight message itself.
    A second emit of the same message reuses the passthrough references."""
    known = storage.put(stored(platform, {"known": 1}))
    start_sailor("echo", step={"is_passthrough": True},
                 **lw_env(storage, ELASTICIO_EMIT_LIGHTWEIGHT_MESSAGE="true",
                          ELASTICIO_OBJECT_STORAGE_SIZE_THRESHOLD="100"))
    platform.publish({"body": {**BIG, "twice": True}, "headers": {},
                      "passthrough": {"step_0": {"body": {"p": "x" * 200}, "headers": {"h": "v"}},
                                      "step_00": {"body": {}, "headers": {OBJECT_ID_HEADER: known}}}})
    first, second = (platform.decode(o) for o in platform.get("message", 2))
    for data in (first, second):
        body_id = data["headers"][OBJECT_ID_HEADER]
        assert data["body"] == {}
        pt = data["passthrough"]
        assert set(pt) == {"step_0", "step_00", "step_2"}
        assert pt["step_2"] == {"body": {}, "headers": {OBJECT_ID_HEADER: body_id}}
        assert pt["step_00"] == {"body": {}, "headers": {OBJECT_ID_HEADER: known}}
        assert pt["step_0"]["body"] == {} and pt["step_0"]["headers"]["h"] == "v"
        assert platform.cipher.decrypt(storage.objects[body_id].data, 2) == {**BIG, "twice": True}
        pt_obj = storage.objects[pt["step_0"]["headers"][OBJECT_ID_HEADER]]
        assert platform.cipher.decrypt(pt_obj.data, 2) == {"p": "x" * 200}
    assert first["passthrough"]["step_0"] == second["passthrough"]["step_0"], "uploaded once"
    assert len(storage.of("POST")) == 3  # two bodies, one passthrough body


def get_count(storage: ObjectStorageServer) -> int:
    return len(storage.of("GET"))


FAILURES = {
    "404": (lambda s: None, 1),  # the object does not exist: a client error is not retried
    "5xx": (lambda s: s.fail_next(10, 503), 3),  # 1 + REQUEST_MAX_RETRY (default 2)
    "slow": (lambda s: s.slow_next(10, 3.0), 3),  # REQUEST_TIMEOUT=500 ms per request, then retried
    "dropped": (lambda s: s.drop_next(10), 3),  # connection closed without an answer
    "wrong-token": (lambda s: setattr(s, "token", "another-token-0123456789"), 1),  # 401
}


@pytest.mark.parametrize("failure", list(FAILURES))
def test_given_storage_failing_when_a_reference_arrives_then_bounded_retries_an_error_and_a_reject(
    start_sailor: StartSailor, platform: PlatformSide, storage: ObjectStorageServer, failure: str
) -> None:
    setup, expected_gets = FAILURES[failure]
    object_id = str(uuid.uuid4()) if failure == "404" else storage.put(stored(platform, BIG))
    proc = start_sailor("inspect", **lw_env(storage, REQUEST_TIMEOUT="500"))
    token = storage.token
    setup(storage)
    bad = platform.publish({"body": {}, "headers": {OBJECT_ID_HEADER: object_id}})
    (err,) = platform.get("error", timeout=60)
    envelope = json.loads(err.body)
    error = platform.cipher.decrypt(envelope["error"].encode(), 1)
    assert error["name"] == "Error"
    assert error["message"] == f"Failed to get message body with id={object_id}"
    assert platform.cipher.decrypt(envelope["errorInput"].encode(), 1)["headers"] == {OBJECT_ID_HEADER: object_id}
    assert err.headers["parentMessageId"] == bad
    assert rejected_ids(platform, 1) == [bad]
    assert get_count(storage) == expected_gets
    assert platform.count("message") == 0, "the component never got the message"

    # the step goes on: the next message (inline) is processed normally
    storage.token = token
    platform.publish({"body": {"next": 1}, "headers": {}})
    (out,) = platform.get("message", timeout=60)
    assert platform.decode(out)["body"]["msg"]["body"] == {"next": 1}
    assert proc.terminate() == 0
    lines = [json.loads(line) for line in proc.log().splitlines() if line.startswith("{")]
    failed = [ln for ln in lines if ln["msg"].startswith("Lightweight message body cannot be fetched")]
    assert len(failed) == 1 and failed[0]["objectId"] == object_id and failed[0]["level"] == 50
    assert_clean_log(proc, storage)
    assert token not in proc.log()


@pytest.mark.parametrize("answer", ["truncated", "garbled"])
def test_given_a_broken_storage_answer_when_a_reference_arrives_then_retried_an_error_and_a_reject(
    start_sailor: StartSailor, platform: PlatformSide, storage: ObjectStorageServer, answer: str
) -> None:
    """A body cut short (``IncompleteRead``) or a garbled status line (``BadStatusLine``) is a network
    error like any other: retried, then the error message and the reject — not a bare reject."""
    with ScriptedServer(truncated() if answer == "truncated" else garbled) as broken:
        env = lw_env(storage)
        env["ELASTICIO_OBJECT_STORAGE_URI"] = broken.url + "/maester"
        proc = start_sailor("inspect", **env)
        bad = platform.publish({"body": {}, "headers": {OBJECT_ID_HEADER: "obj1"}})
        (err,) = platform.get("error", timeout=60)
        error = platform.cipher.decrypt(json.loads(err.body)["error"].encode(), 1)
        assert (error["name"], error["message"]) == ("Error", "Failed to get message body with id=obj1")
        assert rejected_ids(platform, 1) == [bad]
        assert len(broken.requests) == 3, "1 + REQUEST_MAX_RETRY (default 2)"
        platform.publish({"body": {"next": 1}, "headers": {}})
        (out,) = platform.get("message", timeout=60)
        assert platform.decode(out)["body"]["msg"]["body"] == {"next": 1}
        assert proc.terminate() == 0
        assert_clean_log(proc, storage)


def test_given_transient_storage_errors_when_a_reference_arrives_then_the_retry_succeeds(
    start_sailor: StartSailor, platform: PlatformSide, storage: ObjectStorageServer
) -> None:
    object_id = storage.put(stored(platform, BIG))
    start_sailor("inspect", **lw_env(storage))
    storage.fail_next(2, 502)
    platform.publish({"body": {}, "headers": {OBJECT_ID_HEADER: object_id}})
    (out,) = platform.get("message")
    assert platform.decode(out)["body"]["msg"]["body"] == BIG
    assert get_count(storage) == 3
    assert platform.count("error") == 0


def test_given_max_retry_4_when_storage_keeps_failing_then_five_attempts(
    start_sailor: StartSailor, platform: PlatformSide, storage: ObjectStorageServer
) -> None:
    object_id = storage.put(stored(platform, BIG))
    start_sailor("inspect", **lw_env(storage, REQUEST_MAX_RETRY="4"))
    storage.fail_next(10, 500)
    platform.publish({"body": {}, "headers": {OBJECT_ID_HEADER: object_id}})
    platform.get("error", timeout=60)
    assert get_count(storage) == 5


def test_given_storage_down_when_uploading_then_an_error_a_reject_and_the_step_goes_on(
    start_sailor: StartSailor, platform: PlatformSide, storage: ObjectStorageServer
) -> None:
    proc = start_sailor("echo", **lw_env(storage, ELASTICIO_EMIT_LIGHTWEIGHT_MESSAGE="true",
                                         ELASTICIO_OBJECT_STORAGE_SIZE_THRESHOLD="10"))
    storage.fail_next(3, 500)
    bad = platform.publish({"body": BIG, "headers": {}})
    (err,) = platform.get("error", timeout=60)
    error = platform.cipher.decrypt(json.loads(err.body)["error"].encode(), 1)
    assert (error["name"], error["message"]) == ("Error", "Lightweight message/passthrough body upload error")
    assert rejected_ids(platform, 1) == [bad]
    assert platform.count("message") == 0, "nothing is published inline instead"
    assert len(storage.of("POST")) == 3
    platform.publish({"body": BIG, "headers": {}})
    (out,) = platform.get("message", timeout=60)
    assert platform.decode(out)["body"] == {}
    assert proc.terminate() == 0
    assert_clean_log(proc, storage)


def test_given_no_storage_uri_when_a_reference_arrives_then_a_clear_error_and_a_reject(
    start_sailor: StartSailor, platform: PlatformSide, storage: ObjectStorageServer
) -> None:
    env = lw_env(storage)
    del env["ELASTICIO_OBJECT_STORAGE_URI"]
    proc = start_sailor("inspect", **env)
    bad = platform.publish({"body": {}, "headers": {OBJECT_ID_HEADER: "abc"}})
    (err,) = platform.get("error", timeout=30)
    error = platform.cipher.decrypt(json.loads(err.body)["error"].encode(), 1)
    assert error["message"] == "Failed to get message body with id=abc"
    assert rejected_ids(platform, 1) == [bad]
    assert "ELASTICIO_OBJECT_STORAGE_URI is not set" in proc.log()


def test_given_greenlet_mode_when_references_arrive_then_they_are_resolved_without_blocking_the_loop(
    start_sailor: StartSailor, platform: PlatformSide, storage: ObjectStorageServer
) -> None:
    """With SAILOR_CONCURRENCY=greenlet the fetch runs on a helper thread: a slow fetch of one message
    does not hold up an inline message behind it (prefetch 2)."""
    object_id = storage.put(stored(platform, BIG))
    start_sailor("inspect", SAILOR_CONCURRENCY="greenlet", ELASTICIO_RABBITMQ_PREFETCH_SAILOR="2",
                 **lw_env(storage))
    storage.slow_next(1, 3.0)
    platform.publish({"body": {}, "headers": {OBJECT_ID_HEADER: object_id}})
    platform.publish({"body": {"inline": 1}, "headers": {}})
    first, second = (platform.decode(o)["body"]["msg"]["body"] for o in platform.get("message", 2))
    assert (first, second) == ({"inline": 1}, BIG)
