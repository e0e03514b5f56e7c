# The connector image: the Python sailor runs the component in /home/apps.
#   flow step:     docker run <image>                                 (env from the platform)
#   service mode:  docker run <image> service verifyCredentials       (args are passed to the sailor)
# Build: `docker build .` (BuildKit) on the default base, or scripts/image.py build (buildah, on a Debian
# base made from Debian packages when no registry can be reached) — see README.md "The image".
#
# BASE must provide `python3` 3.11+ with the venv module: python:3.11-slim (python in /usr/local/bin) and
# Debian bookworm's python3 + python3-venv (/usr/bin/python3) both do. Everything is installed into the
# virtual environment /opt/venv, so the base's own Python stays untouched (Debian marks it
# externally managed, PEP 668) and the entry point is the same on every base.
ARG BASE=python:3.11-slim
FROM ${BASE}

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 ELASTICIO_COMPONENT_PATH=. \
    VIRTUAL_ENV=/opt/venv PATH=/opt/venv/bin:$PATH

# Runtime dependencies come from ONE list: [project].dependencies of pyproject.toml (read with tomllib),
# plus the sailor's own (sailor/pyproject.toml). Nothing from requirements-dev.txt (the test tools).
# pip's settings for the build (index, CA bundle) may be handed in as build secrets, which are mounted for
# this RUN only and never stored in a layer: `pip.conf` (a pip configuration file) and `pip-cert` (a CA
# bundle; a pip.conf handed in refers to it as /run/secrets/pip-cert). Without them pip uses its defaults.
COPY pyproject.toml /tmp/build/pyproject.toml
COPY sailor/ /tmp/build/sailor/
RUN --mount=type=secret,id=pip.conf --mount=type=secret,id=pip-cert \
    set -eu; \
    if [ -s /run/secrets/pip.conf ]; then export PIP_CONFIG_FILE=/run/secrets/pip.conf; fi; \
    python3 -m venv /opt/venv; \
    /opt/venv/bin/python -c 'import tomllib; \
print("\n".join(tomllib.load(open("/tmp/build/pyproject.toml", "rb"))["project"]["dependencies"]))' \
        > /tmp/build/requirements.txt; \
    /opt/venv/bin/python -m pip install --no-cache-dir --disable-pip-version-check --no-warn-script-location \
        /tmp/build/sailor -r /tmp/build/requirements.txt; \
    /opt/venv/bin/python -m pip uninstall -q -y pip setuptools; \
    rm -rf /tmp/build; \
    useradd --create-home --uid 1000 apps

WORKDIR /home/apps
COPY component.json verifyCredentials.py logo.png LICENSE README.md ./
COPY actions/ ./actions/
COPY lib/ ./lib/
COPY schemas/ ./schemas/
# Ship bytecode: with PYTHONDONTWRITEBYTECODE every container start would otherwise compile lib/ again.
RUN python -m compileall -q actions lib verifyCredentials.py

USER apps
ENTRYPOINT ["/opt/venv/bin/python", "-m", "elasticio_sailor"]
