"""``python -m metering_emulator`` — same as the ``metering-emulator`` command."""

from __future__ import annotations

import sys

from .cli import main

sys.exit(main())
