#!/usr/bin/env bash
# Node sailor 2.7.8 vs the Python sailor on the shared node-sailor harness (see bench/sailor_bench.py).
#   bench/sailor_bench.sh                       throughput (10,000 msgs, prefetch 10) and platform defaults
#   bench/sailor_bench.sh --repeat 3            medians of 3 alternating runs per sailor
#   SAILOR_BENCH_HARNESS=/path/to/node-sailor bench/sailor_bench.sh --only throughput
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-}
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
exec "$PY" bench/sailor_bench.py "$@"
