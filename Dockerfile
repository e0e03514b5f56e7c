# The connector image: the Python sailor runs the component in this directory.
#   flow step:     docker run <image>                                 (env from the platform)
#   service mode:  docker run <image> service verifyCredentials       (args are passed to the sailor)
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 ELASTICIO_COMPONENT_PATH=.
WORKDIR /home/apps

COPY sailor/ /opt/sailor/
RUN pip install --no-cache-dir /opt/sailor "requests>=2.31,<3" "requests-aws4auth>=1.2,<2" "jsonschema>=4.18,<5" "botocore>=1.44.8,<2" \
    && useradd --create-home --uid 1000 apps

COPY component.json verifyCredentials.py logo.png LICENSE README.md ./
COPY actions/ ./actions/
COPY lib/ ./lib/
COPY schemas/ ./schemas/
# Ship bytecode: with PYTHONDONTWRITEBYTECODE every container start would otherwise compile lib/ again.
RUN python -m compileall -q actions lib verifyCredentials.py

USER apps
ENTRYPOINT ["python", "-m", "elasticio_sailor"]
