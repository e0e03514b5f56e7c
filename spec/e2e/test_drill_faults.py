"""Drill: the emulator throttles 20% of the calls, fails 5% with 500 and drops 2% of the connections.

Nothing may surface as an error: the connector retries (and, if retries ran out, the platform's rebound
brings the message back), and the audit stays exact.
"""

from __future__ import annotations

from spec.e2e.conftest import MakeFlow
from spec.support.flow import UsagePlan, _op_stats


def test_throttling_500s_and_dropped_connections_never_surface(make_flow: MakeFlow) -> None:
    plan = UsagePlan.make(messages=300, records_per_message=10)
    flow = make_flow(plan)
    flow.emulator.add_fault(type="throttle", rate=0.20)
    flow.emulator.add_fault(type="error500", rate=0.05)
    flow.emulator.add_fault(type="drop", rate=0.02)
    flow.publish()
    flow.wait_done(timeout=420)
    audit = flow.audit()
    assert audit.exact, audit.problems()
    assert audit.billed == audit.expected
    assert not flow.errors and not flow.errors_foreign  # nothing surfaced on the error queue
    assert sorted(flow.sink) == list(range(plan.messages))
    # the faults really fired, many times, and were absorbed
    faults = {f["type"]: f["fired"] for f in flow.emulator.admin("GET", "faults")["faults"]}
    assert faults["throttle"] >= 20 and faults["error500"] >= 3 and faults["drop"] >= 1, faults
    stats = _op_stats(flow.emulator.stats(), "BatchMeterUsage")
    assert stats["calls"] > plan.messages  # retried calls on top of one per message
