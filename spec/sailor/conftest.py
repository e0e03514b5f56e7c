"""Fixtures of the sailor tests: a fake platform API and the platform's AMQP side of one step."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from spec.sailor.helpers import FakeApi, PlatformSide, SailorProc, sailor_env, step_doc
from spec.support.rabbit import RabbitBroker


@pytest.fixture
def fake_api() -> Iterator[FakeApi]:
    api = FakeApi()
    yield api
    api.stop()


@pytest.fixture
def platform(rabbit: RabbitBroker) -> Iterator[PlatformSide]:
    side = PlatformSide(rabbit.url, "t-" + uuid.uuid4().hex[:10])
    yield side
    side.close()


StartSailor = Callable[..., SailorProc]


@pytest.fixture
def start_sailor(platform: PlatformSide, fake_api: FakeApi, tmp_path: Path) -> Iterator[StartSailor]:
    """Start a flow-step sailor for ``function``; ``step`` overrides fields of the step document."""
    procs: list[SailorProc] = []

    def start(function: str, step: dict[str, Any] | None = None, wait: bool = True, **env: str) -> SailorProc:
        doc = step_doc(function=function, **(step or {}))
        fake_api.routes[("GET", "/v1/tasks/flow1/steps/step_2")] = [(200, doc)]
        proc = SailorProc(sailor_env(platform, fake_api, function, **env), tmp_path / f"sailor{len(procs)}.log")
        procs.append(proc)
        if wait:
            proc.wait_consuming(platform)
        return proc

    yield start
    for p in procs:
        p.kill()
