"""Flow-step mode against a real RabbitMQ: the compatibility checks of sailor-protocol §13 (8–21)."""

from __future__ import annotations

from spec.sailor.conftest import StartSailor
from spec.sailor.helpers import FakeApi, PlatformSide


def test_given_echo_step_when_message_arrives_then_data_published_and_input_acked(
    platform: PlatformSide, start_sailor: StartSailor, fake_api: FakeApi
) -> None:
    sailor = start_sailor("echo")
    mid = platform.publish({"id": "in-1", "body": {"hello": "wörld"}, "headers": {}})
    [out] = platform.get("message")
    assert platform.decode(out) == {"body": {"hello": "wörld"}, "headers": {}}
    assert out.headers["parentMessageId"] == mid
    assert sailor.terminate() == 0
    assert platform.unacked_or_ready() == 0
