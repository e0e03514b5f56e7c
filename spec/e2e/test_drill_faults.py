"""Drill: the emulator throttles 20% of the calls, fails 5% with 500 and drops 2% of the connections.

Nothing may surface as an error: the connector retries (and, if retries ran out, the platform's rebound
brings the message back), and the audit stays exact.
"""

from __future__ import annotations

from spec.e2e.conftest import MakeFlow
from spec.support.emulator import op_stats
from spec.support.flow import UsagePlan


def test_throttling_500s_and_dropped_connections_never_surface(make_flow: MakeFlow) -> None:
    plan = UsagePlan.make(messages=300, records_per_message=10)
    flow = make_flow(plan)
    flow.emulator.add_fault(type="throttle", rate=0.20)
    flow.emulator.add_fault(type="error500", rate=0.05)
    flow.emulator.add_fault(type="drop", rate=0.02)
    flow.publish()
    flow.wait_done(timeout=420)
    audit = flow.audit()
    print(audit.table())  # shown with -s, and on failure
    assert audit.exact, audit.problems()
    assert audit.billed == audit.expected
    assert not flow.errors and not flow.errors_foreign  # nothing surfaced on the error queue
    assert sorted(flow.sink) == list(range(plan.messages))
    # the faults really fired, many times, and were absorbed
    faults = {f["type"]: f["fired"] for f in flow.emulator.admin.faults()}
    assert faults["throttle"] >= 20 and faults["error500"] >= 3 and faults["drop"] >= 1, faults
    stats = op_stats(flow.emulator.stats(), "BatchMeterUsage")
    assert stats["calls"] > plan.messages  # retried calls on top of one per message


def test_retries_exhausted_go_back_to_the_platform_and_are_billed_once_later(make_flow: MakeFlow) -> None:
    """Five 500s in a row outlive the connector's in-process retries: the message is rebounded, the
    platform's delay queue brings it back, and it is billed once — still nothing on the error queue."""
    plan = UsagePlan.make(messages=20, records_per_message=5)
    # prefetch 1: messages one at a time, so the first message gets all five failures
    flow = make_flow(plan, prefetch=1, step2_env={"ELASTICIO_REBOUND_INITIAL_EXPIRATION": "2000"})
    flow.emulator.add_fault(type="error500", rate=1.0, count=5)
    flow.publish()
    flow.wait_done(timeout=240)
    audit = flow.audit()
    assert audit.exact, audit.problems()
    assert audit.billed == audit.expected
    assert not flow.errors
    rebounds = flow.platform.drain(flow.rebound_log_queue(flow.step2), kind="raw", timeout=30)
    assert len(rebounds) == 1
    assert rebounds[0].headers["reboundIteration"] == 1
    assert "InternalServiceError" in str(rebounds[0].headers.get("reboundReason"))
    assert op_stats(flow.emulator.stats(), "BatchMeterUsage")["calls"] == plan.messages + 5
