# watcher: a news-monitoring daemon. Config in /config, database in /data.
#   docker build -t watcher .
#   docker run -d -v "$PWD:/config:ro" -v watcher-data:/data -p 127.0.0.1:8080:8080 --env-file watcher.env watcher
#   (or: docker compose up -d, with docker-compose.yml)
# Build stage: the wheel, with the matcher's C extension (watcher/rules/_select.c) compiled. The slim image has no
# C compiler, and without one setup.py leaves the extension out: matching would run ~1.4x slower.
FROM python:3.11-slim AS build
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY watcher ./watcher
# Fail the build if the extension is not in the wheel (setup.py would otherwise go on without it).
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels . \
    && python -c "import glob, sys, zipfile; names = zipfile.ZipFile(glob.glob('/wheels/*.whl')[0]).namelist(); sys.exit(not any(n.startswith('watcher/rules/_select.') and not n.endswith(('.c', '.pyi')) for n in names))"

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    WATCHER_FEEDS=/config/feeds.yaml \
    WATCHER_RULES=/config/rules.yaml \
    WATCHER_DB=/data/watcher.db \
    WATCHER_LOG_LEVEL=INFO \
    WATCHER_HTTP=0.0.0.0:8080

WORKDIR /app
COPY --from=build /wheels /wheels
RUN pip install /wheels/*.whl \
    && rm -rf /wheels \
    && useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin watcher \
    && mkdir -p /config /data \
    && chown watcher:watcher /data

# The bundled defaults, used when no /config volume is mounted.
COPY feeds.yaml rules.yaml /config/

USER 10001:10001
VOLUME ["/data"]

# /healthz and /metrics (WATCHER_HTTP above): all interfaces inside the container, so a published port and the
# health check reach it; publish it on the host's loopback only (docker-compose.yml does).
EXPOSE 8080

# Healthy while the scheduler runs and some feed is polled successfully on time (`watcher health` asks /healthz
# of the daemon at WATCHER_HTTP; exit 0 healthy, 1 not).
HEALTHCHECK --interval=1m --timeout=15s --start-period=2m --retries=3 \
    CMD ["watcher", "health"]

# exec form: watcher runs as PID 1 and receives SIGTERM itself (no shell in between).
ENTRYPOINT ["watcher"]
CMD ["run"]
