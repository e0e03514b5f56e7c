"""Three Python sailor processes on one listen queue process every message exactly once (issue 3).

This is how users scale a step out: the platform starts more containers on the same queue.
"""

from __future__ import annotations

from collections import Counter

from spec.support.platform import FakePlatformApi, Platform, Sailors, delivery_report, new_flow

MESSAGES = 3000
SAILORS = 3


def test_given_three_python_sailors_on_one_queue_when_messages_arrive_then_each_is_processed_exactly_once(
    platform_env: tuple[Platform, FakePlatformApi, Sailors],
) -> None:
    platform, _api, sailors = platform_env
    (step,) = new_flow(["echo"], prefix="competing")
    platform.declare_flow([step])
    for n in range(1, SAILORS + 1):
        sailors.start(
            "python",
            step,
            container_id=f"replica-{n}",
            consumers=n,
            ELASTICIO_RABBITMQ_PREFETCH_SAILOR="5",
            ELASTICIO_DATA_RATE_LIMIT="100000",
        )

    bodies = [{"i": i, "payload": "x" * 100} for i in range(MESSAGES)]
    ids = platform.publish_inputs(step, bodies)
    outputs = platform.collect(step.out_queue("message"), MESSAGES, timeout=180, settle=2.0)

    report = delivery_report(dict(zip(ids, bodies, strict=True)), outputs)
    per_replica = Counter(out.headers.get("containerId") for out in outputs)
    print(f"competing consumers: {report.summary()} per replica={dict(per_replica)}")
    assert report.missing == [] and report.wrong == []
    assert report.duplicates == 0
    assert report.outputs == MESSAGES
    assert set(per_replica) == {f"replica-{n}" for n in range(1, SAILORS + 1)}, "every replica must take work"
    assert all(count > 0 for count in per_replica.values())

    sailors.stop_all()
    assert [s.returncode() for s in sailors.started] == [0] * SAILORS, "graceful SIGTERM exits 0"
    assert platform.ready(step.listen_queue) == 0, "every input was acked"
    assert platform.drain(step.out_queue("error"), kind="error", settle=0.2) == []
