"""elasticio-sailor-py: run Python elastic.io components (wire-compatible with the Node sailor 2.7.8).

The component API: ``process(self, msg, cfg, snapshot)`` in the module named by component.json's
``main``; raise :class:`Rebound` to retry later; build outgoing messages with :func:`new_message`.
"""

from .messages import Rebound, new_message

__all__ = ["Rebound", "__version__", "new_message"]
__version__ = "0.1.0"
