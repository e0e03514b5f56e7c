"""Lightweight messages between the Node sailor 2.7.8 and the Python sailor, on a real broker.

The object storage is ours (``spec/support/objectstorage.py``); these tests also prove it against the
real client: the Node sailor (``@elastic.io/maester-client`` 6.0.0) uploads to it (a chunked POST) and
reads from it.

* flow N→P: step_1 = Node ``echo`` with ``ELASTICIO_EMIT_LIGHTWEIGHT_MESSAGE``, step_2 = Python ``inspect``;
* flow P→N: step_1 = Python ``echo`` with lightweight output, step_2 = Node ``inspect``;

for protocol versions 1 and 2, with and without passthrough. Both step_1 outputs must be references
(``body: {}`` + ``x-ipaas-object-storage-id``) to the same stored bytes, and both step_2 components must
receive the original bodies and passthrough.
"""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from spec.sailor.interop.test_node_python_interop import INPUT_BODY, INPUT_PASSTHROUGH
from spec.support.objectstorage import ObjectStorageServer
from spec.support.platform import FakePlatformApi, Output, Platform, Sailors, Step, new_flow

HEADER = "x-ipaas-object-storage-id"


@pytest.fixture
def storage() -> Iterator[ObjectStorageServer]:
    with ObjectStorageServer("jwt-" + secrets.token_urlsafe(24), prefix="maester") as server:
        yield server


def storage_env(storage: ObjectStorageServer, emit: bool) -> dict[str, str]:
    env = {"ELASTICIO_OBJECT_STORAGE_URI": storage.url, "ELASTICIO_OBJECT_STORAGE_TOKEN": storage.token}
    if emit:
        env.update(ELASTICIO_EMIT_LIGHTWEIGHT_MESSAGE="true", ELASTICIO_OBJECT_STORAGE_SIZE_THRESHOLD="10")
    return env


def with_ids_replaced(value: Any, ids: set[str]) -> Any:
    """``value`` with every object id replaced by ``"<id>"`` (ids differ between the two flows)."""
    if isinstance(value, dict):
        return {k: with_ids_replaced(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [with_ids_replaced(v, ids) for v in value]
    return "<id>" if isinstance(value, str) and value in ids else value


def run_flow(
    platform: Platform, sailors: Sailors, storage: ObjectStorageServer, kinds: tuple[str, str],
    pv: int, message_id: str, passthrough: bool,
) -> tuple[list[Step], Output, Output]:
    steps = new_flow(["echo", "inspect"], prefix=f"lw{kinds[0][0]}{kinds[1][0]}")
    for step in steps:
        step.is_passthrough = passthrough
    platform.declare_flow(steps)
    for kind, step, emit in zip(kinds, steps, (True, False), strict=True):
        sailors.start(kind, step, env=storage_env(storage, emit), ELASTICIO_PROTOCOL_VERSION=str(pv))
    message: dict[str, Any] = {"id": message_id, "body": INPUT_BODY, "headers": {}, "attachments": {}}
    if passthrough:
        message["passthrough"] = INPUT_PASSTHROUGH
    platform.publish_input(steps[0], message, pv)
    first = platform.collect(steps[0].out_queue("message"), 1, timeout=60)
    second = platform.collect(steps[1].out_queue("message"), 1, timeout=60)
    assert len(first) == 1 and len(second) == 1, f"{kinds}: no output; logs: " + " | ".join(
        s.log_tail() for s in sailors.started)
    return steps, first[0], second[0]


def decrypt_object(platform: Platform, storage: ObjectStorageServer, object_id: str) -> Any:
    return json.loads(platform.crypto.decrypt(storage.objects[object_id].data))


@pytest.mark.parametrize("passthrough", [False, True], ids=["plain", "passthrough"])
@pytest.mark.parametrize("pv", [1, 2], ids=["v1", "v2"])
def test_given_lightweight_steps_when_chained_either_way_then_each_resolves_what_the_other_stored(
    platform_env: tuple[Platform, FakePlatformApi, Sailors], storage: ObjectStorageServer, pv: int,
    passthrough: bool,
) -> None:
    platform, _api, sailors = platform_env
    message_id = str(uuid.uuid4())
    n_steps, node_first, py_second = run_flow(platform, sailors, storage, ("node", "python"), pv, message_id,
                                              passthrough)
    node_posts = list(storage.of("POST"))
    p_steps, py_first, node_second = run_flow(platform, sailors, storage, ("python", "node"), pv, message_id,
                                              passthrough)
    py_posts = storage.of("POST")[len(node_posts):]

    # the real client's uploads reached our server: chunked, bearer token, JSON content type
    assert node_posts and all(p.chunked and p.authorized for p in node_posts)
    assert {p.headers["content-type"] for p in node_posts + py_posts} == {"application/json"}
    assert {p.headers["x-request-id"] for p in node_posts} == {f"f:{n_steps[0].flow_id};s:step_1;m:"}
    assert {p.headers["x-request-id"] for p in py_posts} == {f"f:{p_steps[0].flow_id};s:step_1;m:"}
    assert all(p.path == "/maester/objects" for p in node_posts + py_posts)
    # same key and IV: both sailors store byte-identical objects
    assert sorted(p.body for p in py_posts) == sorted(p.body for p in node_posts)
    assert len(node_posts) == (2 if passthrough else 1)

    ids = set(storage.objects)
    for out in (node_first, py_first):
        message = out.message
        assert out.protocol_version == pv
        assert message["body"] == {}
        body_id = message["headers"][HEADER]
        assert decrypt_object(platform, storage, body_id) == INPUT_BODY
        if passthrough:
            pt = message["passthrough"]
            assert set(pt) == {"step_0", "step_1"}
            assert pt["step_1"] == {"body": {}, "headers": {HEADER: body_id}}
            assert pt["step_0"]["body"] == {} and pt["step_0"]["id"] == "p0"
            assert pt["step_0"]["headers"]["h"] == "v"
            assert decrypt_object(platform, storage, pt["step_0"]["headers"][HEADER]) == {"first": 1}
        else:
            assert "passthrough" not in message
    assert with_ids_replaced(py_first.message, ids) == with_ids_replaced(node_first.message, ids)

    # step_2 (no lightweight output) received the original bodies, the headers kept
    node_read = [r for r in storage.of("GET") if r.headers["x-request-id"].startswith(f"f:{p_steps[0].flow_id}")]
    assert node_read and all(r.authorized for r in node_read), "the Node sailor read from our server"
    for second, first in ((py_second, node_first), (node_second, py_first)):
        received = second.message["body"]["received"]
        assert received["body"] == INPUT_BODY
        assert received["headers"] == {HEADER: first.message["headers"][HEADER]}
        if passthrough:
            pt = received["passthrough"]
            assert pt["step_0"]["body"] == INPUT_PASSTHROUGH["step_0"]["body"]
            assert pt["step_1"]["body"] == INPUT_BODY
            out_pt = second.message["passthrough"]
            assert set(out_pt) == {"step_0", "step_1", "step_2"}
            assert out_pt["step_1"]["body"] == INPUT_BODY and out_pt["step_0"]["body"] == {"first": 1}
    assert with_ids_replaced(py_second.message, ids) == with_ids_replaced(node_second.message, ids)

    sailors.stop_all()
    for step in n_steps + p_steps:
        assert platform.ready(step.listen_queue) == 0
        assert platform.drain(step.out_queue("error"), kind="error", settle=0.2) == []
    assert storage.token not in "".join(s.log_text() for s in sailors.started if s.kind == "python")


def test_given_a_missing_object_when_node_and_python_read_it_then_their_error_messages_match(
    platform_env: tuple[Platform, FakePlatformApi, Sailors], storage: ObjectStorageServer
) -> None:
    """Node's ``processMessage``: ``Failed to get message body with id=<id>`` on the error queue, the
    input as errorInput, the input rejected — the Python sailor publishes the same error."""
    platform, _api, sailors = platform_env
    missing = str(uuid.uuid4())
    errors = {}
    for kind in ("node", "python"):
        (step,) = new_flow(["inspect"], prefix=f"lwerr{kind[0]}")
        platform.declare_flow([step])
        sailor = sailors.start(kind, step, env=storage_env(storage, False))
        message = {"id": "m1", "body": {}, "headers": {HEADER: missing}, "attachments": {}}
        platform.publish_input(step, message, 2)
        got = platform.collect(step.out_queue("error"), 1, timeout=60, kind="error")
        assert len(got) == 1, f"{kind}: no error; {sailor.log_tail()}"
        errors[kind] = got[0]
        assert platform.drain(step.out_queue("message"), settle=0.2) == []
        if kind == "node":
            sailor.kill9()  # Node 2.7.8 never finishes a graceful shutdown after this failure
        else:
            assert sailor.terminate() == 0
        assert platform.ready(step.listen_queue) == 0, "rejected, not requeued"
    node, py = errors["node"].message, errors["python"].message
    assert py["error"]["name"] == node["error"]["name"] == "Error"
    assert py["error"]["message"] == node["error"]["message"] == f"Failed to get message body with id={missing}"
    assert py["errorInput"] == node["errorInput"]
    assert json.loads(errors["python"].body)["errorInput"] == json.loads(errors["node"].body)["errorInput"]
    assert len(storage.of("GET")) == 2, "a 404 is not retried, by either client"
