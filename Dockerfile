# seqnet: one image for the L1 mock, the sequencer node and seqctl (docker-compose.yml uses it).
# The base image is a build argument so that a mirror or a local stand-in can be used:
#   docker build --build-arg PYTHON_IMAGE=registry.example/python:3.11-slim .
ARG PYTHON_IMAGE=python:3.11-slim
FROM ${PYTHON_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/seqnet/bin:$PATH

# Dependencies first (cached while only the sources change): install the project's runtime
# dependencies from pyproject.toml into a virtual environment, without the test extras.
WORKDIR /src
COPY pyproject.toml README.md ./
RUN python3 -m venv /opt/seqnet \
 && python3 -c "import tomllib; d = tomllib.load(open('pyproject.toml', 'rb')); print('\n'.join(d['project']['dependencies']))" > /tmp/requirements.txt \
 && /opt/seqnet/bin/pip install -r /tmp/requirements.txt

COPY sequencer_node ./sequencer_node
COPY l1_mock ./l1_mock
RUN /opt/seqnet/bin/pip install --no-deps . \
 && rm -rf /src/build \
 && useradd --create-home --uid 10001 --shell /usr/sbin/nologin seqnet \
 && mkdir -p /devnet /data \
 && chown seqnet:seqnet /devnet /data

USER seqnet
WORKDIR /home/seqnet
# 8545: L1 JSON-RPC, 8600: node RPC + /health + /metrics, 9000: node p2p
EXPOSE 8545 8600 9000
CMD ["seqctl", "--help"]
