"""Fixtures shared by the whole suite."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from spec.support.rabbit import RabbitBroker  # noqa: E402 - needs the repository root on sys.path first


@pytest.fixture(scope="session")
def rabbit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitBroker]:
    """One private RabbitMQ broker for the session (tests use their own queue names)."""
    with RabbitBroker(tmp_path_factory.mktemp("rabbit")) as broker:
        yield broker
