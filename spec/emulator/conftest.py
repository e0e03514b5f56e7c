"""Emulator spec fixtures. ``metering_emulator`` itself comes from the package's pytest plugin."""

from __future__ import annotations

import pytest
from metering_emulator.testing import EmulatorServer


@pytest.fixture
def emu(metering_emulator: EmulatorServer) -> EmulatorServer:
    """The shared emulator, reset, with quotas off (the quota specs switch them back on)."""
    metering_emulator.admin.set_config(quotas=False)
    return metering_emulator
