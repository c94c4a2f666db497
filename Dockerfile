# cognito-gateway: an authentication reverse proxy for Amazon Cognito.
#
#   docker build -t cognito-gateway .
#   docker run --read-only --tmpfs /tmp -p 4180:4180 -p 9464:9464 \
#       -e GATEWAY_SERVER_PUBLIC_URL=... -e GATEWAY_COGNITO_USER_POOL_ID=... cognito-gateway
#   docker run ... -v "$PWD/gateway.toml:/etc/cognito-gateway/gateway.toml:ro" \
#       cognito-gateway run --config /etc/cognito-gateway/gateway.toml
#
# The build stage installs what `make install` installs: the project with its `speed` extra,
# dependencies from pyproject.toml and nothing else. tests/test_docker_install.py runs this
# stage's ARG, COPY and RUN steps in a fresh virtualenv, so keep them plain shell.
#
# The interpreter is the official image's: CPython built with PGO and LTO (configure
# --enable-optimizations --with-lto). On the gateway's request path that build spends 15-23 %
# less CPU than the same CPython built without them (docs/performance.md); keep a base image
# whose python is built that way (the official python images, Debian's python3 package), never
# a plain source build.

FROM python:3.11-slim AS build
# Extras of the install: `speed` is uvloop, ~40 us less CPU per request than asyncio's loop.
# `--build-arg EXTRAS=speed,otel` adds OpenTelemetry tracing (deploy/kubernetes/overlays/otel).
ARG EXTRAS=speed
ENV VIRTUAL_ENV=/opt/venv \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
COPY pyproject.toml README.md* ./
COPY gateway ./gateway
RUN python -m venv "$VIRTUAL_ENV" \
    && "$VIRTUAL_ENV/bin/pip" install ".[${EXTRAS}]"

# The runtime image: the interpreter from the same base, the venv, no compilers, no pip cache,
# no source tree. It writes nothing outside /tmp, so it runs with a read-only root filesystem.
FROM python:3.11-slim
ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    TMPDIR=/tmp
RUN groupadd --system --gid 10001 gateway \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /tmp \
       --shell /usr/sbin/nologin gateway
COPY --from=build /opt/venv /opt/venv
# Numeric, so that Kubernetes' runAsNonRoot can verify it.
USER 10001:10001
WORKDIR /tmp
# 4180: proxy and /oauth2/* (server.listen); 9464: /metrics (server.metrics_listen).
EXPOSE 4180 9464
# Liveness on /ping at the port of GATEWAY_SERVER_LISTEN (default 4180); python, as slim has
# no curl. A non-2xx answer or no answer raises, and the exit status is 1.
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; port = os.environ.get('GATEWAY_SERVER_LISTEN', ':4180').rpartition(':')[2]; urllib.request.urlopen(f'http://127.0.0.1:{port}/ping', timeout=2)"]
# SIGTERM: /ready turns 503, listeners close, in-flight requests get
# server.shutdown_timeout_seconds (default 25) to finish, exit 0. Give `docker stop` longer
# than that (docker stop -t 30, compose stop_grace_period, terminationGracePeriodSeconds).
STOPSIGNAL SIGTERM
ENTRYPOINT ["cognito-gateway"]
CMD ["run"]
