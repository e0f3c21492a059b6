# feedwatch container image.
#
#   docker build -t feedwatch .
#   docker run --rm -v feedwatch-state:/app/.feedwatch feedwatch   # ./feedwatch.yaml, embedded Redis
#   docker compose up                                                # with a real Redis: docker-compose.yml
#
# The install is the Makefile's, from the same lock, without the editable/dev parts: every
# dependency pinned with its hash (requirements/main.txt), then feedwatch itself --no-deps.

# -- build: install feedwatch and its dependencies into /app/.venv ---------------------------
FROM python:3.11-slim AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /app
# The lock first: this layer is rebuilt only when the lock changes, not with every code change.
COPY requirements/main.txt ./requirements/main.txt
RUN python -m venv /app/.venv \
 && /app/.venv/bin/pip install --require-hashes -r requirements/main.txt
COPY pyproject.toml README.md ./
COPY daemon ./daemon
COPY alerts ./alerts
RUN /app/.venv/bin/pip install --no-deps --no-build-isolation .

# -- runtime: the virtualenv (same path, same base image), rules and default config ----------
FROM python:3.11-slim

RUN groupadd --system --gid 10001 feedwatch \
 && useradd --system --uid 10001 --gid feedwatch --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin feedwatch

WORKDIR /app
COPY --from=build /app/.venv /app/.venv
COPY rules ./rules
COPY feedwatch.yaml ./feedwatch.yaml
# Word forms (daemon/match/query/lexicon.py) index simplemma's lemma lists once per machine
# (~25 s); do it here, into the image, so that no container start pays for it.
ENV FEEDWATCH_CACHE_DIR=/app/.cache/feedwatch
RUN /app/.venv/bin/python -c "from daemon.match.query.forms import lexicon; \
[lexicon(lang) for lang in ('en', 'pl', 'ru', 'uk')]" \
 && test -n "$(ls /app/.cache/feedwatch)"
# state_dir (.feedwatch, relative to the config file) must be writable by the service user, and
# outlive the container: the embedded Redis keeps there which items were seen and alerted.
# Mount a named volume on it (`-v feedwatch-state:/app/.feedwatch`); `docker run --rm` deletes
# an anonymous one with the container, and every start would then alert the last 24 h again.
RUN mkdir -p /app/.feedwatch && chown feedwatch:feedwatch /app/.feedwatch
VOLUME ["/app/.feedwatch"]

# FEEDWATCH_CONFIG is the one source of truth: `feedwatch run` and `feedwatch health` (the
# HEALTHCHECK) both read it when no --config is given. Point it at your own file to change both.
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    FEEDWATCH_CONFIG=/app/feedwatch.yaml

USER feedwatch

# SIGTERM starts feedwatch's graceful shutdown: in-flight polls and deliveries get
# polling.shutdown_grace (5 s by default) to finish, then the final writes. Docker sends SIGKILL
# after its stop timeout (10 s by default): keep the grace well below it, or raise the timeout
# with `docker run --stop-timeout 30` / compose's `stop_grace_period`. Exec-form ENTRYPOINT, so
# the signal reaches Python directly (no shell in between).
STOPSIGNAL SIGTERM

# `feedwatch health` exits 0 when this instance's heartbeat key in Redis is fresh.
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
    CMD ["feedwatch", "health"]

ENTRYPOINT ["feedwatch"]
CMD ["run"]
