#!/usr/bin/env bash
# Prepares a machine for the demo, the tests and the benchmarks. Idempotent; safe to run again.
#   scripts/setup.sh            Python venv (.venv) with the sailor, the emulator and the test tools
#   scripts/setup.sh --all      also RabbitMQ (Debian package, installed with apt-get when run as root)
#                               and the Node.js peers (npm ci in nodepeers/), and for the image tests
#                               (spec/image) buildah, podman and debootstrap (Debian packages) and the
#                               image's Debian base (made once, cached in /var/tmp/metering-connector-image)
set -euo pipefail
cd "$(dirname "$0")/.."

want_all=0
[ "${1:-}" = "--all" ] && want_all=1

say() { printf '[setup] %s\n' "$*" >&2; }

PY=${PYTHON:-python3}
# A .venv left half-made (no pip: python3-venv missing) or made by a Python older than 3.11 is made again.
if ! .venv/bin/python -c 'import sys, pip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  rm -rf .venv
  if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    say "$PY is missing or older than 3.11: install Python 3.11+ (or set PYTHON=/path/to/python3.11)"
    exit 1
  fi
  if ! "$PY" -c 'import ensurepip' 2>/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing python3-venv with apt-get (the venv module needs it on Debian)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
  fi
  say "creating .venv"
  "$PY" -m venv .venv || { rm -rf .venv; say "could not create .venv: install python3-venv (Debian)"; exit 1; }
fi
stamp=.venv/.installed
if [ ! -f "$stamp" ] || [ requirements-dev.txt -nt "$stamp" ] || [ requirements-lock.txt -nt "$stamp" ] \
   || [ sailor/pyproject.toml -nt "$stamp" ] || [ emulator/pyproject.toml -nt "$stamp" ]; then
  say "installing Python packages into .venv"
  .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
  # first the runtime packages at the versions and hashes the image installs (requirements-lock.txt), so the
  # tests run what ships; then the local packages and the test tools around them
  .venv/bin/python -m pip install -q --disable-pip-version-check --require-hashes --no-deps \
    -r requirements-lock.txt
  .venv/bin/python -m pip install -q --disable-pip-version-check -e ./sailor -e ./emulator -r requirements-dev.txt
  touch "$stamp"
fi

if [ "$want_all" = 1 ]; then
  if ! ls /usr/lib/rabbitmq/lib/rabbitmq_server-*/sbin/rabbitmq-server >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      say "installing rabbitmq-server with apt-get"
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends rabbitmq-server >/dev/null
      # the tests start private brokers of their own (spec/support/rabbit.py): not the system's service,
      # which the package starts on a systemd machine (listening on all interfaces)
      if command -v systemctl >/dev/null; then systemctl disable --now rabbitmq-server >/dev/null 2>&1 || true; fi
    else
      say "rabbitmq-server is missing: install the Debian package rabbitmq-server (or run this as root)"
      exit 1
    fi
  fi
  if ! command -v npm >/dev/null; then
    say "npm is missing: install Node.js 18 or newer"
    exit 1
  fi
  if [ ! -d nodepeers/node_modules/elasticio-sailor-nodejs ] || [ nodepeers/package-lock.json -nt nodepeers/node_modules/.package-lock.json ]; then
    say "installing the Node.js peers (npm ci)"
    (cd nodepeers && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  fi
  # The image (spec/image, README "The image"): buildah builds the Dockerfile on a Debian base made
  # with debootstrap and podman import (scripts/image.py base: cached, so a second run takes a second).
  if ! command -v buildah >/dev/null || ! command -v podman >/dev/null || ! command -v debootstrap >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      say "installing buildah, podman and debootstrap with apt-get"
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends buildah podman debootstrap \
        >/dev/null
    else
      say "buildah, podman or debootstrap is missing: install these Debian packages (or run this as root)"
      exit 1
    fi
  fi
  .venv/bin/python scripts/image.py base >/dev/null
fi
