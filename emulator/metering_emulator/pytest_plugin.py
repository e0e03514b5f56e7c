"""pytest plugin (entry point ``pytest11``): the ``metering_emulator`` fixture.

One emulator per test session with the default fixtures; ``reset()`` runs before every test that uses it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .testing import EmulatorServer


@pytest.fixture(scope="session")
def metering_emulator_session() -> Iterator[EmulatorServer]:
    """The session's emulator (not reset between tests; prefer ``metering_emulator``)."""
    with EmulatorServer() as emu:
        yield emu


@pytest.fixture
def metering_emulator(metering_emulator_session: EmulatorServer) -> EmulatorServer:
    """The session's emulator, reset to its start-up state for this test."""
    metering_emulator_session.admin.reset()
    return metering_emulator_session
