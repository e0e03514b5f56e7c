"""Drill: restart RabbitMQ in the middle of a run (same data dir: durable queues, persistent messages).

The platform's part is played as in production: every step publishes persistently, and a step whose
process exits is started again (what the orchestrator does with a crashed container).
"""

from __future__ import annotations

import time
from pathlib import Path

from spec.e2e.conftest import MakeFlow
from spec.support.flow import UsagePlan
from spec.support.rabbit import RabbitBroker


def test_broker_restart_mid_run_loses_nothing_and_bills_once(make_flow: MakeFlow, tmp_path: Path) -> None:
    with RabbitBroker(tmp_path / "rabbit") as broker:
        plan = UsagePlan.make(messages=600, records_per_message=3)
        flow = make_flow(plan, broker=broker, persistent=True, supervise=True)
        flow.publish()
        flow.wait_until(lambda f: len(f.sink) >= 150, timeout=300, what="150 messages through the flow")
        left = plan.messages - len(flow.sink)
        # calls in flight while the broker goes away: the service answers 1.5 s late
        flow.emulator.add_fault(type="latency", latencyMs=1500, rate=1.0)
        time.sleep(0.5)
        broker.restart()
        flow.emulator.clear_faults()
        flow.wait_done(timeout=600)
        audit = flow.audit()
        print(audit.table())  # shown with -s, and on failure
        flow.stop()
    assert left > 0  # the broker went away mid-run
    assert audit.exact, audit.problems()
    assert audit.billed == audit.expected
    assert sorted(flow.sink) == list(range(plan.messages))
    # our sailor reconnected by itself; it was never restarted by the supervisor
    assert flow.restarts["step_2"] == 0, dict(flow.restarts)
