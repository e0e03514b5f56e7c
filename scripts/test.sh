#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what it needs, runs ruff and mypy, then pytest over spec/.
# Extra arguments go to pytest (e.g. scripts/test.sh spec/emulator -x).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --all
# Linters first (pyproject.toml has their settings); only on a whole run, not when pytest arguments are given.
if [ "$#" -eq 0 ]; then
  echo "[test] ruff check" >&2
  .venv/bin/ruff check .
  echo "[test] mypy" >&2
  .venv/bin/mypy lib actions verifyCredentials.py sailor/elasticio_sailor emulator/metering_emulator
  .venv/bin/mypy spec
  .venv/bin/mypy --explicit-package-bases scripts bench
fi
exec .venv/bin/python -m pytest "$@"
