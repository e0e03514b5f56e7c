"""``python -m elasticio_sailor`` — see :mod:`elasticio_sailor.cli`."""

import sys

from .cli import main

sys.exit(main())
