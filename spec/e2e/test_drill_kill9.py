"""Drill: kill -9 the Python sailor of step 2 in the middle of 5,000 messages, then restart it.

One sailor, as the issue asks. The emulator's quotas are off and step 2's credentials raise
``callsPerSecond`` to 200 (an account whose quota AWS raised), so the one sailor is not held to the
documented 10 calls/s (which would take ~9 minutes for 5,000 messages).
"""

from __future__ import annotations

import time

from spec.e2e.conftest import MakeFlow
from spec.support.flow import UsagePlan


def test_kill9_mid_run_then_restart_loses_nothing_and_bills_once(make_flow: MakeFlow) -> None:
    plan = UsagePlan.make(messages=5000, records_per_message=2)
    flow = make_flow(plan, replicas=1, quotas=False, step2_fields={"callsPerSecond": "200"})
    assert len(flow.step2_procs()) == 1
    flow.publish()
    flow.wait_until(lambda f: len(f.sink) >= 1500, timeout=400, what="1,500 messages through step 2")
    # make sure calls are in flight at the moment of the kill: the service answers 0.8 s late, so the
    # records of the killed calls get stored after their caller died, and their messages come back
    flow.emulator.add_fault(type="latency", latencyMs=800, rate=1.0)
    time.sleep(0.4)
    flow.kill9_step2()
    flow.emulator.clear_faults()
    delivered_at_kill = len(flow.sink)
    assert not any(p.alive() for p in flow.step2_procs())
    waiting = flow.platform.ready(flow.step2.listen_queue)  # includes the killed sailor's unacked ones
    flow.restart_step2()
    flow.wait_done(timeout=600)
    audit = flow.audit()
    print(audit.table())  # shown with -s, and on failure
    assert 1500 <= delivered_at_kill < plan.messages and waiting > 0  # killed mid-run
    assert audit.exact, audit.problems()
    assert audit.billed == audit.expected and sum(audit.expected.values()) == 10_000
    assert sorted(flow.sink) == list(range(plan.messages))
    # the calls cut off by the kill were sent again after the restart and deduplicated, not billed twice
    assert audit.resubmitted >= 1
