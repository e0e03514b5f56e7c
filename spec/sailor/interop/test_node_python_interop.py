"""Interop with the official Node.js sailor 2.7.8 on a real broker (issue 3; docs/platform-contract.md §13 #8–15).

The main test runs two flows side by side with the same input, for protocol versions 1 and 2,
with and without passthrough:

* flow N→P: step_1 = Node sailor running ``echo``,   step_2 = Python sailor running ``inspect``;
* flow P→N: step_1 = Python sailor running ``echo``, step_2 = Node sailor running ``inspect``.

``inspect`` publishes what its ``process`` received, and a tap queue on each step_1 routing key
shows what step_1 published. So the test proves both directions: each sailor decodes exactly what
the other one published, and — comparing the two flows position by position — the Python sailor
publishes the same bodies, headers and properties as the Node sailor.

The other tests compare, the same way, what each sailor publishes for errors (and error replies),
rebounds, httpReply, snapshots and ``x-eio-routing-key``; check that an ``INPUT_FORMAT=error``
step of one sailor reads the other's error messages; and push 1,000 messages through mixed flows.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

import pytest

from spec.support.platform import FakePlatformApi, Output, Platform, Sailors, Step, new_flow

INPUT_BODY = {"i": 7, "name": "Jürgen ✓", "f": 2.5, "none": None, "arr": [1, "x", {"deep": True}]}
INPUT_PASSTHROUGH = {"step_0": {"id": "p0", "body": {"first": 1}, "headers": {"h": "v"}}}
VOLATILE = {"messageId", "parentMessageId", "start", "end"}


def normalised(headers: dict[str, Any], flow_id: str) -> dict[str, Any]:
    """Headers with the values that differ by design between two flows replaced by their kind."""
    out: dict[str, Any] = {}
    for key, value in headers.items():
        if key in VOLATILE:
            out[key] = type(value).__name__
        elif key == "taskId" and value == flow_id:
            out[key] = "<flow id>"
        else:
            out[key] = value
    return out


def run_flow(
    platform: Platform,
    sailors: Sailors,
    kinds: tuple[str, str],
    protocol_version: int,
    message_id: str,
    passthrough: bool = False,
) -> tuple[list[Step], Output, Output]:
    """Start the two sailors of one flow, send the input, return (steps, step_1 output, step_2 output)."""
    steps = new_flow(["echo", "inspect"], prefix=f"{kinds[0][0]}{kinds[1][0]}")
    for step in steps:
        step.is_passthrough = passthrough
    platform.declare_flow(steps)
    for kind, step in zip(kinds, steps, strict=True):
        sailors.start(
            kind,
            step,
            container_id=f"container-{step.step_id}",
            ELASTICIO_PROTOCOL_VERSION=str(protocol_version),
        )
    platform.publish_input(
        steps[0],
        {
            "id": message_id,
            "body": INPUT_BODY,
            "headers": {},
            "attachments": {},
            "passthrough": INPUT_PASSTHROUGH,
        },
        protocol_version,
        headers={"X-EIO-META-Tenant": "tenant-7", "reply_to": "reply.rk.1", "someOtherHeader": "dropped"},
    )
    first = platform.collect(steps[0].out_queue("message"), 1, timeout=60)
    second = platform.collect(steps[1].out_queue("message"), 1, timeout=60)
    assert len(first) == 1 and len(second) == 1, f"{kinds}: no output; logs: " + " | ".join(
        s.log_tail() for s in sailors.started
    )
    return steps, first[0], second[0]


def assert_header_contract(out: Output, step: Step, parent_id: str, protocol_version: int) -> None:
    """docs/platform-contract.md §4.6: what a data message's headers must be, whoever published it."""
    h = out.headers
    assert set(h) == {
        "stepId",
        "x-eio-meta-tenant",
        "threadId",
        "messageId",
        "parentMessageId",
        "reply_to",
        "execId",
        "taskId",
        "workspaceId",
        "containerId",
        "userId",
        "compId",
        "function",
        "start",
        "end",
        "protocolVersion",
    }
    assert h["stepId"] == step.step_id
    assert h["parentMessageId"] == parent_id
    assert h["threadId"] == "platform-thread-1"
    assert h["x-eio-meta-tenant"] == "tenant-7"
    assert h["reply_to"] == "reply.rk.1"
    assert h["taskId"] == step.flow_id
    assert h["function"] == step.function
    assert uuid.UUID(h["messageId"])
    for key in ("start", "end", "protocolVersion"):
        assert isinstance(h[key], int) and not isinstance(h[key], bool), f"{key} must be an AMQP integer"
    assert h["protocolVersion"] == protocol_version
    assert h["start"] <= h["end"]
    assert (out.content_type, out.content_encoding, out.delivery_mode) == ("application/json", "utf8", 1)
    assert out.routing_key == step.routing_key("message")


@pytest.mark.parametrize("passthrough", [False, True], ids=["plain", "passthrough"])
@pytest.mark.parametrize("protocol_version", [1, 2], ids=["v1", "v2"])
def test_given_node_and_python_steps_when_chained_either_way_then_each_reads_what_the_other_wrote(
    platform_env: tuple[Platform, FakePlatformApi, Sailors], protocol_version: int, passthrough: bool
) -> None:
    platform, api, sailors = platform_env
    message_id = str(uuid.uuid4())

    n_steps, node_first, py_second = run_flow(
        platform, sailors, ("node", "python"), protocol_version, message_id, passthrough
    )
    p_steps, py_first, node_second = run_flow(
        platform, sailors, ("python", "node"), protocol_version, message_id, passthrough
    )

    # step_1 outputs: both sailors publish the same message in the same encoding.
    expected_first: dict[str, Any] = {"body": INPUT_BODY, "headers": {}}
    for out in (node_first, py_first):
        assert out.protocol_version == protocol_version
        if passthrough:  # docs/platform-contract.md §6.4: incoming passthrough plus this step's own output
            assert out.message["passthrough"] == {**INPUT_PASSTHROUGH, "step_1": expected_first}
            assert {k: v for k, v in out.message.items() if k != "passthrough"} == expected_first
        else:
            assert out.message == expected_first
    assert py_first.message == node_first.message
    # the same IV for every message makes the crypto deterministic: byte-identical AMQP bodies.
    assert py_first.body == node_first.body
    assert_header_contract(node_first, n_steps[0], message_id, protocol_version)
    assert_header_contract(py_first, p_steps[0], message_id, protocol_version)
    assert normalised(py_first.headers, p_steps[0].flow_id) == normalised(
        node_first.headers, n_steps[0].flow_id
    )
    assert {k: type(v) for k, v in py_first.headers.items()} == {
        k: type(v) for k, v in node_first.headers.items()
    }

    # step_2 saw exactly what step_1 published (+ reply_to copied into msg.headers, as Node does).
    expected_received = {**node_first.message, "headers": {"reply_to": "reply.rk.1"}}
    assert py_second.message["body"]["received"] == expected_received, "Python step misread Node's output"
    assert node_second.message["body"]["received"] == expected_received, "Node step misread Python's output"
    assert py_second.message == node_second.message
    assert py_second.message["body"]["cfg"] == {"apiKey": "secret"}
    if passthrough:
        assert set(py_second.message["passthrough"]) == {"step_0", "step_1", "step_2"}

    # step_2 headers chain on step_1's, identically for both sailors.
    assert_header_contract(py_second, n_steps[1], node_first.headers["messageId"], protocol_version)
    assert_header_contract(node_second, p_steps[1], py_first.headers["messageId"], protocol_version)
    assert normalised(py_second.headers, n_steps[1].flow_id) == normalised(
        node_second.headers, p_steps[1].flow_id
    )

    # every input was acked (a stopped consumer's unacked deliveries would be back in the queue),
    # and no error was published.
    sailors.stop_all()
    for step in n_steps + p_steps:
        assert platform.ready(step.listen_queue) == 0
        assert platform.drain(step.out_queue("error"), kind="error", settle=0.2) == []
    assert {(r.method, r.authorized) for r in api.requests} == {("GET", True)}


def run_failing_step(
    platform: Platform, sailors: Sailors, kind: str, protocol_version: int, message_id: str
) -> tuple[Step, Output, Output, str]:
    """One ``echo`` step fed an input that makes it fail; returns (step, error output, error reply, reply key)."""
    (step,) = new_flow(["echo"], prefix=f"err{kind[0]}")
    platform.declare_flow([step])
    reply_key = platform.declare_reply_queue(step.exchange)
    sailors.start(kind, step, ELASTICIO_PROTOCOL_VERSION=str(protocol_version), LOG_LEVEL="trace")
    platform.publish_input(
        step,
        {"id": message_id, "body": {**INPUT_BODY, "fail": True}, "headers": {}, "attachments": {}},
        protocol_version,
        headers={"X-EIO-META-Tenant": "tenant-7", "reply_to": reply_key},
    )
    errors = platform.collect(step.out_queue("error"), 1, timeout=60, kind="error")
    replies = platform.collect(reply_key, 1, timeout=30, kind="raw")
    assert len(errors) == 1 and len(replies) == 1, (
        f"{kind}: no error message; log: {sailors.started[-1].log_tail()}"
    )
    return step, errors[0], replies[0], reply_key


@pytest.mark.parametrize("protocol_version", [1, 2], ids=["v1", "v2"])
def test_given_a_failing_input_when_node_and_python_sailors_fail_then_their_error_messages_match(
    platform_env: tuple[Platform, FakePlatformApi, Sailors], protocol_version: int
) -> None:
    platform, api, sailors = platform_env
    message_id = str(uuid.uuid4())
    n_step, n_err, n_reply, n_key = run_failing_step(platform, sailors, "node", protocol_version, message_id)
    p_step, p_err, p_reply, p_key = run_failing_step(
        platform, sailors, "python", protocol_version, message_id
    )

    for step, err, reply, key in ((n_step, n_err, n_reply, n_key), (p_step, p_err, p_reply, p_key)):
        assert err.routing_key == step.routing_key("error")
        assert list(json.loads(err.body)) == ["error", "errorInput"]
        assert list(err.message["error"]) == ["name", "message", "stack"]
        assert err.message["error"]["name"] == "Error"
        assert err.message["error"]["message"] == f"requested failure {INPUT_BODY['i']}"
        assert err.message["errorInput"]["body"] == {**INPUT_BODY, "fail": True}
        assert "protocolVersion" not in err.headers and err.headers["parentMessageId"] == message_id
        # docs/platform-contract.md §6.7 error reply: the bare base64 error to reply_to, flagged x-eio-error-response
        assert reply.routing_key == key
        assert platform.crypto.decode(reply.body, 1) == err.message["error"]
        assert reply.headers["x-eio-error-response"] is True
        assert platform.drain(step.out_queue("message"), settle=0.2) == []

    # errorInput is the input in base64 form (v2 inputs re-encrypted): byte-identical for both sailors.
    assert json.loads(p_err.body)["errorInput"] == json.loads(n_err.body)["errorInput"]
    for p_out, n_out in ((p_err, n_err), (p_reply, n_reply)):
        p_headers = {**normalised(p_out.headers, p_step.flow_id), "reply_to": "<reply key>"}
        n_headers = {**normalised(n_out.headers, n_step.flow_id), "reply_to": "<reply key>"}
        p_headers["containerId"] = n_headers["containerId"] = "<container>"
        assert p_headers == n_headers
        assert {k: type(v) for k, v in p_out.headers.items()} == {
            k: type(v) for k, v in n_out.headers.items()
        }
        assert (p_out.content_type, p_out.content_encoding, p_out.delivery_mode) == (
            n_out.content_type,
            n_out.content_encoding,
            n_out.delivery_mode,
        )

    sailors.stop_all()
    assert platform.ready(n_step.listen_queue) == 0 and platform.ready(p_step.listen_queue) == 0, "rejected"
    # the Python sailor logged at trace level, and no secret or message body with it
    py_log = sailors.started[-1].log_text()
    assert "Fully initialized" in py_log
    for secret in (platform.password, api.api_key, "Jürgen ✓"):
        assert secret not in py_log, "secrets and message bodies never reach the log"


def run_rebound_step(
    platform: Platform, sailors: Sailors, kind: str, inputs: list[tuple[str, dict[str, Any]]]
) -> tuple[Step, list[Output]]:
    """One ``rebound`` step fed ``inputs`` (messageId, extra headers); returns its rebound publishes."""
    (step,) = new_flow(["rebound"], prefix=f"reb{kind[0]}")
    platform.declare_flow([step])
    sailors.start(kind, step)
    for i, (message_id, headers) in enumerate(inputs):
        message = {"id": message_id, "body": {"i": i}, "headers": {}, "attachments": {}}
        platform.publish_input(step, message, 1, headers=headers)
    rebounds = platform.collect(step.out_queue("rebound"), len(inputs), timeout=60, kind="raw")
    assert len(rebounds) == len(inputs), f"{kind}: rebounds missing; log: {sailors.started[-1].log_tail()}"
    return step, sorted(rebounds, key=lambda out: str(out.headers["messageId"]))


def test_given_rebounding_steps_when_node_and_python_rebound_then_the_rebound_messages_match(
    platform_env: tuple[Platform, FakePlatformApi, Sailors],
) -> None:
    """Rebound (docs/platform-contract.md §6.8): original bytes and headers, reboundIteration, exponential
    expiration — as Node does it."""
    platform, _api, sailors = platform_env
    inputs = [(f"a-{uuid.uuid4()}", {}), (f"b-{uuid.uuid4()}", {"reboundIteration": 2})]
    n_step, n_out = run_rebound_step(platform, sailors, "node", inputs)
    p_step, p_out = run_rebound_step(platform, sailors, "python", inputs)

    for step, outs in ((n_step, n_out), (p_step, p_out)):
        assert [o.expiration for o in outs] == ["15000", "60000"]
        assert [o.headers["reboundIteration"] for o in outs] == [1, 3]
        assert [o.headers["reboundReason"] for o in outs] == ["try later 0", "try later 1"]
        assert [platform.crypto.decode(o.body, 1)["body"] for o in outs] == [{"i": 0}, {"i": 1}]
        assert all(o.routing_key == step.routing_key("rebound") for o in outs)
    for p, n in zip(p_out, n_out, strict=True):
        assert p.body == n.body, "the original input bytes, unchanged"
        assert normalised(p.headers, p_step.flow_id) == normalised(n.headers, n_step.flow_id)
        assert {k: type(v) for k, v in p.headers.items()} == {k: type(v) for k, v in n.headers.items()}
        assert (p.content_type, p.content_encoding, p.expiration) == (
            n.content_type,
            n.content_encoding,
            n.expiration,
        )

    sailors.stop_all()
    assert platform.ready(n_step.listen_queue) == 0 and platform.ready(p_step.listen_queue) == 0, "acked"
    assert platform.drain(p_step.out_queue("message"), settle=0.2) == []
    assert platform.drain(p_step.out_queue("error"), kind="error", settle=0.2) == []


@pytest.mark.parametrize("persistent", ["false", "true"])
def test_given_a_persistent_input_when_rebounded_then_delivery_mode_follows_the_persistent_setting_as_in_node(
    platform_env: tuple[Platform, FakePlatformApi, Sailors], persistent: str
) -> None:
    """Node 2.7.8 copies the input's properties into the rebound but amqplib's ``persistent`` option
    (= ``ELASTICIO_AMQP_PERSISTENT_MESSAGES``) then overrides ``deliveryMode``: 1 by default even for
    a persistent (delivery_mode 2) input, 2 with the setting on."""
    platform, _api, sailors = platform_env
    modes = {}
    for kind in ("node", "python"):
        (step,) = new_flow(["rebound"], prefix=f"rdm{kind[0]}")
        platform.declare_flow([step])
        sailors.start(kind, step, ELASTICIO_AMQP_PERSISTENT_MESSAGES=persistent)
        platform.publish_input(step, {"id": str(uuid.uuid4()), "body": {"i": 0}, "headers": {}}, 1)
        (out,) = platform.collect(step.out_queue("rebound"), 1, timeout=60, kind="raw")
        modes[kind] = out.delivery_mode
    assert modes["node"] == (2 if persistent == "true" else 1)
    assert modes["python"] == modes["node"]


@dataclass
class FeatureRun:
    """What one sailor published for the ``features`` inputs, per destination queue."""

    step: Step
    replies: list[Output]
    snapshots: list[Output]
    data: list[Output]
    routed: list[Output]


def run_features_step(platform: Platform, sailors: Sailors, kind: str, ids: list[str]) -> FeatureRun:
    """A ``features`` step fed: httpReply request, snapshot request, routed output, plain — in order."""
    (step,) = new_flow(["features"], prefix=f"feat{kind[0]}")
    platform.declare_flow([step])
    reply_key = platform.declare_reply_queue(step.exchange)
    route_key = platform.declare_reply_queue(step.exchange)
    sailors.start(kind, step)  # prefetch 1 (the default): one message at a time, in order
    bodies: list[dict[str, Any]] = [
        {"i": 0, "reply": True},
        {"i": 1, "snapshot": True},
        {"i": 2, "route": route_key},
        {"i": 3},
    ]
    for mid, body in zip(ids, bodies, strict=True):
        message = {"id": mid, "body": body, "headers": {}, "attachments": {}}
        platform.publish_input(step, message, 1, headers={"reply_to": reply_key})
    data = platform.collect(step.out_queue("message"), 3, timeout=60)
    log = sailors.started[-1].log_tail()
    assert len(data) == 3, f"{kind}: data missing; log: {log}"
    return FeatureRun(
        step=step,
        replies=platform.collect(reply_key, 1, timeout=10, kind="raw"),
        snapshots=platform.collect(step.out_queue("snapshot"), 2, timeout=10, kind="snapshot"),
        data=data,
        routed=platform.collect(route_key, 1, timeout=10),
    )


def test_given_reply_snapshot_and_routing_events_when_node_and_python_emit_them_then_the_publishes_match(
    platform_env: tuple[Platform, FakePlatformApi, Sailors],
) -> None:
    """httpReply / snapshot / updateSnapshot (docs/platform-contract.md §6.9) and x-eio-routing-key (§4.1),
    Python against Node."""
    platform, _api, sailors = platform_env
    ids = [str(uuid.uuid4()) for _ in range(4)]
    node = run_features_step(platform, sailors, "node", ids)
    py = run_features_step(platform, sailors, "python", ids)

    for run in (node, py):
        (reply,) = run.replies
        assert platform.crypto.decode(reply.body, 1) == {
            "statusCode": 201,
            "body": "created 0",
            "headers": {"content-type": "text/plain"},
        }
        assert reply.headers["protocolVersion"] == 1 and "end" not in reply.headers
        assert [(s.message, s.headers["snapshotEvent"]) for s in run.snapshots] == [
            ({"a": 1}, "snapshot"),
            ({"b": 1}, "updateSnapshot"),
        ]
        assert [d.message["body"] for d in run.data] == [
            {"i": 0, "snapshot": {}},
            {"i": 1, "snapshot": {}},
            {"i": 3, "snapshot": {"a": 1, "b": 1}},
        ]
        (routed,) = run.routed
        assert routed.message == {"body": {"i": 2, "snapshot": {"a": 1, "b": 1}}, "headers": {}}
        assert routed.headers["parentMessageId"] == ids[2]

    pairs = [*zip(py.replies, node.replies, strict=True), *zip(py.snapshots, node.snapshots, strict=True),
             *zip(py.data, node.data, strict=True)]
    pairs += list(zip(py.routed, node.routed, strict=True))
    assert len(pairs) == 7
    for p, n in pairs:
        assert p.body == n.body or p.message == n.message
        p_headers = {**normalised(p.headers, py.step.flow_id), "reply_to": "<reply key>"}
        n_headers = {**normalised(n.headers, node.step.flow_id), "reply_to": "<reply key>"}
        p_headers["containerId"] = n_headers["containerId"] = "<container>"
        assert p_headers == n_headers
        assert {k: type(v) for k, v in p.headers.items()} == {k: type(v) for k, v in n.headers.items()}
        assert (p.content_type, p.content_encoding, p.delivery_mode) == (
            n.content_type,
            n.content_encoding,
            n.delivery_mode,
        )
    assert [o.routing_key.replace(py.step.flow_id, "F") for o in py.snapshots + py.data] == [
        o.routing_key.replace(node.step.flow_id, "F") for o in node.snapshots + node.data
    ]


@pytest.mark.parametrize("protocol_version", [1, 2], ids=["v1", "v2"])
@pytest.mark.parametrize(
    "kinds", [("node", "python"), ("python", "node")], ids=["node-fails", "python-fails"]
)
def test_given_an_error_handler_step_when_the_other_sailor_fails_then_it_reads_the_error_message(
    platform_env: tuple[Platform, FakePlatformApi, Sailors], kinds: tuple[str, str], protocol_version: int
) -> None:
    """A step with ``ELASTICIO_INPUT_FORMAT=error`` consumes the other sailor's error messages
    (docs/platform-contract.md §6.11)."""
    platform, _api, sailors = platform_env
    failing, handler = new_flow(["echo", "inspect"], prefix=f"eh{kinds[0][0]}{kinds[1][0]}")
    platform.declare_flow([failing, handler], chain=False)
    platform.bind(handler.listen_queue, failing.exchange, failing.routing_key("error"))
    sailors.start(kinds[0], failing, ELASTICIO_PROTOCOL_VERSION=str(protocol_version))
    sailors.start(kinds[1], handler, ELASTICIO_INPUT_FORMAT="error")
    message_id = str(uuid.uuid4())
    message = {"id": message_id, "body": {**INPUT_BODY, "fail": True}, "headers": {}, "attachments": {}}
    platform.publish_input(failing, message, protocol_version)

    (tap,) = platform.collect(failing.out_queue("error"), 1, timeout=60, kind="error")
    handled = platform.collect(handler.out_queue("message"), 1, timeout=60)
    assert len(handled) == 1, (
        f"the {kinds[1]} error handler published nothing: {sailors.started[-1].log_tail()}"
    )
    received = handled[0].message["body"]["received"]
    assert received["body"] == {"error": tap.message["error"], "errorInput": message}
    assert received["headers"] == tap.headers
    assert handled[0].headers["parentMessageId"] == tap.headers["messageId"]


@pytest.mark.parametrize(
    "kinds", [("node", "python"), ("python", "node")], ids=["node-to-python", "python-to-node"]
)
def test_given_a_mixed_two_step_flow_when_1000_messages_pass_then_every_body_arrives_once_intact(
    platform_env: tuple[Platform, FakePlatformApi, Sailors], kinds: tuple[str, str]
) -> None:
    """Interop under load: prefetch 10 on both steps, protocol 2 out of step_1, protocol 1 out of step_2."""
    platform, _api, sailors = platform_env
    steps = new_flow(["echo", "echo"], prefix=f"bulk{kinds[0][0]}{kinds[1][0]}")
    platform.declare_flow(steps)
    fast = {"ELASTICIO_RABBITMQ_PREFETCH_SAILOR": "10", "ELASTICIO_DATA_RATE_LIMIT": "100000"}
    sailors.start(kinds[0], steps[0], env=fast, ELASTICIO_PROTOCOL_VERSION="2")
    sailors.start(kinds[1], steps[1], env=fast, ELASTICIO_PROTOCOL_VERSION="1")
    bodies = [{"i": i, "text": f"Größe {i} ✓", "nested": {"list": [i, None, 2.5]}} for i in range(1000)]
    platform.publish_inputs(steps[0], bodies, protocol_version=1)

    finals = platform.collect(steps[1].out_queue("message"), len(bodies), timeout=120, settle=1.0)
    assert sorted((o.message["body"] for o in finals), key=lambda b: b["i"]) == bodies
    assert {o.protocol_version for o in finals} == {1}
    firsts = platform.drain(steps[0].out_queue("message"))
    assert {o.protocol_version for o in firsts} == {2}
    assert {o.headers["messageId"] for o in firsts} == {o.headers["parentMessageId"] for o in finals}
