#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what it needs, then runs pytest over spec/.
# Extra arguments go to pytest (e.g. scripts/test.sh spec/emulator -x).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --all
exec .venv/bin/python -m pytest "$@"
