# syntax=docker/dockerfile:1
# feedwatch container image.
#
#   docker build -t feedwatch .
#   docker run --rm feedwatch                      # ./feedwatch.yaml, embedded Redis in the container
#   docker compose up                              # with a real Redis: see docker-compose.yml
#
# The install step is the Makefile's, without the editable/dev parts:
#   python -m venv /app/.venv && /app/.venv/bin/pip install .

# -- build: install feedwatch and its dependencies into /app/.venv ---------------------------
FROM python:3.11-slim AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY daemon ./daemon
COPY alerts ./alerts
RUN python -m venv /app/.venv && /app/.venv/bin/pip install .

# -- runtime: the virtualenv (same path, same base image), rules and default config ----------
FROM python:3.11-slim

RUN groupadd --system --gid 10001 feedwatch \
 && useradd --system --uid 10001 --gid feedwatch --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin feedwatch

WORKDIR /app
COPY --from=build /app/.venv /app/.venv
COPY rules ./rules
COPY feedwatch.yaml ./feedwatch.yaml
# state_dir (.feedwatch, relative to the config file) must be writable by the service user.
RUN mkdir -p /app/.feedwatch && chown feedwatch:feedwatch /app/.feedwatch

ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    FEEDWATCH_CONFIG=/app/feedwatch.yaml

USER feedwatch

# SIGTERM starts feedwatch's graceful shutdown (polling.shutdown_grace, 10s by default);
# exec-form ENTRYPOINT so the signal reaches Python directly (no shell in between).
STOPSIGNAL SIGTERM

# `feedwatch health` exits 0 when this instance's heartbeat key in Redis is fresh.
# It reads the config named by $FEEDWATCH_CONFIG (compose points it at its own file).
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
    CMD ["feedwatch", "health"]

ENTRYPOINT ["feedwatch"]
CMD ["run", "--config", "/app/feedwatch.yaml"]
