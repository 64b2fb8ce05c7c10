# watcher: a news-monitoring daemon. Config in /config, database in /data.
#   docker build -t watcher .
#   docker run -d -v "$PWD:/config:ro" -v watcher-data:/data -e SLACK_WEBHOOK_URL=... watcher
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    WATCHER_FEEDS=/config/feeds.yaml \
    WATCHER_RULES=/config/rules.yaml \
    WATCHER_DB=/data/watcher.db \
    WATCHER_LOG_LEVEL=INFO

WORKDIR /app
COPY pyproject.toml README.md ./
COPY watcher ./watcher
RUN pip install . \
    && useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin watcher \
    && mkdir -p /config /data \
    && chown watcher:watcher /data

# The bundled defaults, used when no /config volume is mounted.
COPY feeds.yaml rules.yaml /config/

USER 10001:10001
VOLUME ["/data"]

# Healthy while the configuration loads (`watcher check` reads both files; it does not poll).
HEALTHCHECK --interval=5m --timeout=30s --start-period=30s --retries=3 \
    CMD ["watcher", "check"]

# exec form: watcher runs as PID 1 and receives SIGTERM itself (no shell in between).
ENTRYPOINT ["watcher"]
CMD ["run"]
