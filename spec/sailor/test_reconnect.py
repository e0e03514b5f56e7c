"""Broker restart in the middle of a run: the sailor reconnects, nothing is lost, nothing runs twice."""

from __future__ import annotations

import collections
from collections.abc import Iterator
from pathlib import Path

import pytest

from spec.sailor.helpers import FakeApi, PlatformSide, SailorProc, sailor_env, step_doc, wait_until
from spec.support.rabbit import RabbitBroker

N = 150


@pytest.fixture
def own_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitBroker]:
    """A broker of this test alone: restarting the shared one would disturb other tests."""
    with RabbitBroker(tmp_path_factory.mktemp("restart-broker")) as broker:
        yield broker


def test_given_messages_in_flight_when_broker_restarts_then_every_input_processed_once_with_output(
    own_broker: RabbitBroker, fake_api: FakeApi, tmp_path: Path
) -> None:
    platform = PlatformSide(own_broker.url, "restart")
    calls = tmp_path / "calls.log"
    for i in range(N):
        platform.publish({"body": {"i": i, "log": str(calls), "sleep": 0.02}}, {"messageId": f"m-{i}"})
    fake_api.routes[("GET", "/v1/tasks/flow1/steps/step_2")] = [(200, step_doc(function="record"))]
    env = sailor_env(platform, fake_api, "record", ELASTICIO_RABBITMQ_PREFETCH_SAILOR="5",
                     ELASTICIO_AMQP_PERSISTENT_MESSAGES="true")
    sailor = SailorProc(env, tmp_path / "sailor.log")
    try:
        wait_until(lambda: calls.exists() and len(calls.read_text().split()) >= N // 4, timeout=60,
                   what="a quarter of the inputs processed")
        platform.conn.close()
        own_broker.restart()
        platform = PlatformSide(own_broker.url, "restart")
        outs = platform.get("message", N, timeout=120)
        # publishes unconfirmed when the connection dropped are sent again (at least once): keep
        # reading until every input is accounted for
        while {o.headers["parentMessageId"] for o in outs} != {f"m-{i}" for i in range(N)}:
            outs += platform.get("message", 1, timeout=60)
        wait_until(lambda: platform.unacked_or_ready() == 0, timeout=60, what="listen queue drained")
        assert sailor.terminate() == 0
    finally:
        sailor.kill()
    parents = collections.Counter(o.headers["parentMessageId"] for o in outs)
    assert set(parents) == {f"m-{i}" for i in range(N)}
    processed = collections.Counter(calls.read_text().split())
    assert set(processed) == {str(i) for i in range(N)}
    assert max(processed.values()) == 1, [k for k, v in processed.items() if v > 1]
    assert platform.count(platform.dead) == 0
    assert "reconnecting" in sailor.log()
    # duplicates of outputs are bounded by what can be in flight (prefetch)
    assert len(outs) - N <= 5
