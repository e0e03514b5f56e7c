"""Fixtures for the drills: a platform on the session broker, its API and a sailor launcher."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from spec.support.platform import FakePlatformApi, Platform, Sailors, running_platform
from spec.support.rabbit import RabbitBroker


@pytest.fixture
def platform_env(rabbit: RabbitBroker, tmp_path: Path) -> Iterator[tuple[Platform, FakePlatformApi, Sailors]]:
    """(platform, api, sailors); every sailor started is stopped after the test."""
    with running_platform(rabbit.url, tmp_path / "logs") as env:
        yield env
