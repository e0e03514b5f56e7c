"""Scale out: three Python sailor replicas of step 2 consume the same queue (competing consumers)."""

from __future__ import annotations

from collections import Counter

from spec.e2e.conftest import MakeFlow
from spec.support.emulator import op_stats
from spec.support.flow import UsagePlan


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


def test_three_replicas_on_default_settings_share_the_account_quota_without_rebounds(
    make_flow: MakeFlow,
) -> None:
    """Three replicas on one account with default credentials (no ``callsPerSecond``) against the
    emulator's 10 calls/s quota, counted per account as AWS does. Each process starts near the documented
    quota and adapts to the throttling answers (lib/resilience.py ``AdaptivePacer``): the throttled calls
    are retried, and none runs out of retries, so nothing is rebounded, nothing fails, and every record is
    billed exactly once. Counts only: throughput is measured by bench/scale_out.py."""
    plan = UsagePlan.make(messages=300, records_per_message=5)
    flow = make_flow(
        plan, replicas=3, quotas=True, step2_env={"ELASTICIO_REBOUND_INITIAL_EXPIRATION": "3000"}
    )
    flow.publish()
    flow.wait_done(timeout=400)
    audit = flow.audit()
    stats = op_stats(flow.emulator.stats(), "BatchMeterUsage")
    print(audit.table(), stats)  # shown with -s, and on failure
    assert audit.exact, audit.problems()
    assert audit.billed == audit.expected
    assert not flow.errors
    assert flow.rebounds() == 0, stats
    assert stats["succeeded"] == plan.messages  # one successful call per message
    assert stats["calls"] == stats["succeeded"] + stats["throttled"]  # every other call was a throttle, retried
