#!/usr/bin/env bash
# The flow demo, from a fresh machine: a private RabbitMQ, the metering emulator and three steps
# (Node-sailor billing export -> the connector's Batch Meter Usage in the Python sailor -> Node-sailor
# sink), with a live progress line and a final audit table. Installs RabbitMQ if missing (as root) and
# the Node peers. Nothing leaves this machine. Options: scripts/flow-demo.sh --help
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --all
exec .venv/bin/python scripts/flow_demo.py "$@"
