"""Non-blocking ``emit('data')``: the emit returns once the publish is queued, and still

* the input is acked only after every output it emitted was confirmed,
* a publish that finally fails (nacked, no retries left) becomes an error message and a reject — never an ack,
* publishes keep the emit order, also beyond the bound of unconfirmed publishes per message.

Nacks come from a queue bound to the data key that refuses everything (``x-max-length`` 0 with
``x-overflow: reject-publish``): the broker then nacks each publish routed to it.
"""

from __future__ import annotations

import json

import pytest

from spec.sailor.conftest import StartSailor
from spec.sailor.helpers import PlatformSide, wait_until


def refuse_data(platform: PlatformSide) -> None:
    """Make the broker nack every data publish of the step."""
    q = f"{platform.name}:refusing"
    platform.ch.queue_declare(q, arguments={"x-max-length": 0, "x-overflow": "reject-publish"})
    platform.ch.queue_bind(q, platform.exchange, platform.keys["message"])


def error_messages(platform: PlatformSide, count: int) -> list[str]:
    return [platform.cipher.decrypt(json.loads(e.body)["error"].encode(), 1)["message"]
            for e in platform.get("error", count)]


@pytest.mark.parametrize("mode", ["threads", "greenlet"])
def test_given_nacked_data_when_emitted_without_waiting_then_one_error_each_and_input_rejected_never_acked(
    platform: PlatformSide, start_sailor: StartSailor, mode: str
) -> None:
    refuse_data(platform)
    sailor = start_sailor("many", SAILOR_CONCURRENCY=mode, ELASTICIO_AMQP_PUBLISH_RETRY_ATTEMPTS="1")
    platform.publish({"body": {"n": 3}})
    messages = error_messages(platform, 3)
    assert all(m.startswith("Failed on publishing") and "nacked" in m for m in messages), messages
    wait_until(lambda: platform.count(platform.dead) == 1, what="input dead-lettered")
    wait_until(lambda: platform.unacked_or_ready() == 0, what="input settled")
    assert sailor.terminate() == 0
    assert platform.count(platform.dead) == 1
    assert platform.count("error") == 0


def test_given_more_nacked_emits_than_the_unconfirmed_bound_then_every_failure_reported_once_and_rejected(
    platform: PlatformSide, start_sailor: StartSailor
) -> None:
    refuse_data(platform)
    sailor = start_sailor("many", ELASTICIO_AMQP_PUBLISH_RETRY_ATTEMPTS="1")
    platform.publish({"body": {"n": 150}})
    assert len(error_messages(platform, 150)) == 150
    wait_until(lambda: platform.count(platform.dead) == 1, what="input dead-lettered")
    assert sailor.terminate() == 0
    assert platform.count("error") == 0
    assert platform.count(platform.dead) == 1


@pytest.mark.parametrize("mode", ["threads", "greenlet"])
def test_given_more_emits_than_the_unconfirmed_bound_when_processing_then_all_in_order_and_acked(
    platform: PlatformSide, start_sailor: StartSailor, mode: str
) -> None:
    sailor = start_sailor("many", SAILOR_CONCURRENCY=mode)
    platform.publish({"body": {"n": 300}})
    outs = platform.get("message", 300)
    assert [platform.decode(o)["body"]["i"] for o in outs] == list(range(300))
    wait_until(lambda: platform.unacked_or_ready() == 0, what="input acked")
    assert sailor.terminate() == 0
    assert platform.count(platform.dead) == 0
    assert platform.count("error") == 0
