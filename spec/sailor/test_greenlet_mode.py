"""SAILOR_CONCURRENCY=greenlet: every message in a greenlet on the I/O thread, same wire behaviour."""

from __future__ import annotations

import json
from pathlib import Path

from spec.sailor.conftest import StartSailor
from spec.sailor.helpers import FakeApi, PlatformSide, wait_until


def test_given_greenlet_mode_when_many_messages_emit_then_all_published_with_headers_and_acked(
    platform: PlatformSide, start_sailor: StartSailor
) -> None:
    sailor = start_sailor("emit_echo", SAILOR_CONCURRENCY="greenlet", ELASTICIO_RABBITMQ_PREFETCH_SAILOR="10",
                          ELASTICIO_PROTOCOL_VERSION="2")
    sent = {platform.publish({"body": {"i": i}}, {"messageId": f"g-{i}"}): i for i in range(50)}
    outs = platform.get("message", 50)
    assert {o.headers["parentMessageId"]: platform.decode(o)["body"]["i"] for o in outs} == sent
    assert all(o.headers["protocolVersion"] == 2 and isinstance(o.headers["end"], int) for o in outs)
    wait_until(lambda: platform.unacked_or_ready() == 0, what="inputs acked")
    assert sailor.terminate() == 0
    assert platform.count(platform.dead) == 0


def test_given_greenlet_mode_when_errors_and_rebounds_then_same_outcomes_as_thread_mode(
    platform: PlatformSide, start_sailor: StartSailor
) -> None:
    start_sailor("error_then_data", SAILOR_CONCURRENCY="greenlet", ELASTICIO_RABBITMQ_PREFETCH_SAILOR="4",
                 ELASTICIO_ERROR_RATE_LIMIT="1", ELASTICIO_RATE_INTERVAL="50")
    for _ in range(3):
        platform.publish({"body": {}})
    errors = platform.get("error", 3)
    assert [platform.cipher.decrypt(json.loads(e.body)["error"].encode(), 1)["message"] for e in errors] == [
        "first this"] * 3
    assert len(platform.get("message", 3)) == 3
    wait_until(lambda: platform.count(platform.dead) == 3, what="inputs rejected")


def test_given_greenlet_mode_when_snapshot_and_update_keys_then_handled_in_order(
    platform: PlatformSide, start_sailor: StartSailor, fake_api: FakeApi
) -> None:
    start_sailor("snapshots", step={"snapshot": {}}, SAILOR_CONCURRENCY="greenlet")
    platform.publish({"body": {"ops": [{"event": "snapshot", "payload": {"a": 1}}]}})
    platform.publish({"body": {"ops": []}})
    outs = platform.get("message", 2)
    assert [platform.decode(o)["body"]["snapshot"] for o in outs] == [{}, {"a": 1}]
    [snap] = platform.get("snapshot")
    assert snap.body == b'{"a":1}'


def test_given_unknown_concurrency_mode_when_starting_then_exit_1(
    platform: PlatformSide, start_sailor: StartSailor, tmp_path: Path
) -> None:
    sailor = start_sailor("echo", wait=False, SAILOR_CONCURRENCY="fibers")
    assert sailor.wait() == 1
    assert "SAILOR_CONCURRENCY" in sailor.log()
