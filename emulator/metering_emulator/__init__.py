"""A local AWS Marketplace Metering Service emulator: AWS JSON 1.1, SigV4-verified, stateful."""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
