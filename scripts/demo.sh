#!/usr/bin/env bash
# The demo, from a fresh machine: starts the emulator on a free loopback port and runs all four
# actions through the sailor's local runner on the sample messages in examples/, printing what
# each one emits. Nothing leaves this machine.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python scripts/demo.py "$@"
