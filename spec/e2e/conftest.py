"""Fixtures of the end-to-end drills: a flow factory on the session's private broker."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from spec.support.flow import FlowOptions, MeteringFlow, UsagePlan
from spec.support.rabbit import RabbitBroker

MakeFlow = Callable[..., MeteringFlow]


@pytest.fixture
def make_flow(rabbit: RabbitBroker, tmp_path: Path) -> Iterator[MakeFlow]:
    """``make_flow(plan, **options)`` → a started :class:`MeteringFlow`; all of them stopped at the end."""
    flows: list[MeteringFlow] = []

    def make(plan: UsagePlan, broker: RabbitBroker | None = None, **options: Any) -> MeteringFlow:
        flow = MeteringFlow(
            tmp_path / f"flow{len(flows) + 1}", broker or rabbit, plan, FlowOptions(**options)
        )
        flows.append(flow)
        flow.start()
        return flow

    yield make
    for flow in flows:
        flow.stop()
