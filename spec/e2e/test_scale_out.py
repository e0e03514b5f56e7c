"""Scale out: three Python sailor replicas of step 2 consume the same queue (competing consumers)."""

from __future__ import annotations

from collections import Counter

from spec.e2e.conftest import MakeFlow
from spec.support.flow import UsagePlan, op_stats


def test_three_replicas_bill_every_record_exactly_once(make_flow: MakeFlow) -> None:
    plan = UsagePlan.make(messages=900, records_per_message=4)
    flow = make_flow(plan, replicas=3)
    assert flow.platform.consumers(flow.step2.listen_queue) == 3
    flow.publish()
    flow.wait_done(timeout=300)
    audit = flow.audit()
    print(audit.table())  # shown with -s, and on failure
    assert audit.exact, audit.problems()
    assert audit.billed == audit.expected
    assert audit.duplicate_deliveries == 0  # each message processed by exactly one replica
    assert audit.calls == plan.messages  # and metered by exactly one call
    # the work really was shared: step 2's data messages (platform collector copies) per container
    outputs = flow.platform.drain(flow.step2.out_queue("message"), timeout=60)
    per_container = Counter(str(o.headers.get("containerId")) for o in outputs)
    assert len(outputs) == plan.messages
    assert set(per_container) == {"step_2-python-1", "step_2-python-2", "step_2-python-3"}
    assert min(per_container.values()) >= plan.messages // 10, per_container


def test_three_replicas_sharing_the_quota_with_calls_per_second_are_never_throttled(
    make_flow: MakeFlow,
) -> None:
    """What ``callsPerSecond`` is for: three replicas on one account, each set to 3.3 calls/s against
    the emulator's 10 calls/s quota. The pacer keeps each process to 3 calls in any rolling second, so
    together they stay under the quota: not one call throttled, nothing rebounded, one call per message.

    Prefetch 1, so each replica has one call in flight at a time: the pacer's "one second after the
    completion of the call ``rate`` calls before" rule only knows a completion once it happened, and with
    prefetch 10 a call is scheduled while earlier ones are still in flight (one run: 2 of 302 throttled,
    absorbed by retries; exact audit)."""
    plan = UsagePlan.make(messages=300, records_per_message=5)
    flow = make_flow(
        plan,
        replicas=3,
        quotas=True,
        prefetch=1,
        step2_fields={"callsPerSecond": "3.3"},
        step2_env={"ELASTICIO_REBOUND_INITIAL_EXPIRATION": "3000"},
    )
    flow.publish()
    flow.wait_done(timeout=400)
    audit = flow.audit()
    print(audit.table())  # shown with -s, and on failure
    assert audit.exact, audit.problems()
    assert audit.billed == audit.expected
    assert not flow.errors
    stats = op_stats(flow.emulator.stats(), "BatchMeterUsage")
    assert stats["throttled"] == 0, stats
    assert stats["calls"] == stats["succeeded"] == plan.messages == audit.calls  # no retry at all
    assert flow.rebounds() == 0


def test_three_replicas_with_the_quota_on_still_bill_once_and_surface_nothing(make_flow: MakeFlow) -> None:
    """Without ``callsPerSecond`` each replica paces itself to the documented 10 calls/s, so three of them
    on one account exceed the quota: the service throttles, the connector retries and rebounds, and still
    nothing is lost, doubled or failed."""
    plan = UsagePlan.make(messages=300, records_per_message=5)
    flow = make_flow(
        plan, replicas=3, quotas=True, step2_env={"ELASTICIO_REBOUND_INITIAL_EXPIRATION": "3000"}
    )
    flow.publish()
    flow.wait_done(timeout=400)
    audit = flow.audit()
    print(audit.table())  # shown with -s, and on failure
    assert audit.exact, audit.problems()
    assert audit.billed == audit.expected
    assert not flow.errors
    stats = op_stats(flow.emulator.stats(), "BatchMeterUsage")
    assert stats["throttled"] > 0 and stats["succeeded"] == plan.messages  # the quota did bite
