"""What ``watcher run --http ADDR`` adds to the daemon: metrics instruments, /healthz and /metrics.

Built before the pipeline (whose fetcher and per-poll hook feed the metrics), attached to the daemon once it
exists, served on the daemon's event loop while it runs. Database reads go through a read-only engine in a
worker thread: a scrape neither takes the write lock nor blocks a poll.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

import sqlalchemy as sa

from ..config import Config
from ..errors import WatcherError
from ..fetch import Fetcher
from ..models import PollReport
from ..store import Store
from .health import Health, Schedule, Timing, assess
from .http import HttpEndpoint, Response
from .metrics import Metrics
from .reader import reader_engine
from .snapshot import FeedView, Snapshot, read_feeds, read_snapshot

METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class DaemonView(Protocol):
    """What health needs to know of the daemon (watcher.scheduler.Daemon provides it)."""

    @property
    def config(self) -> Config: ...
    @property
    def running(self) -> bool: ...
    @property
    def stopping(self) -> bool: ...
    @property
    def started_at(self) -> datetime: ...


def schedule_of(config: Config) -> Schedule:
    enabled = config.feeds.enabled
    spread = config.feeds.defaults.start_offset
    if spread is None:
        spread = max((min(f.interval, 60.0) for f in enabled), default=0.0)
    return Schedule(feeds={f.name: Timing(f.interval, f.deadline) for f in enabled}, start_spread=spread)


class Observability:
    """Metrics + health of one daemon, served over HTTP."""

    def __init__(self, store: Store, address: str, *, now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.reader = reader_engine(store.engine.url)
        self.now = now
        self.metrics = Metrics(self._snapshot)
        self.endpoint = HttpEndpoint(address, {"/healthz": self._healthz, "/metrics": self._metrics})
        self.daemon: DaemonView | None = None

    # --- wiring --------------------------------------------------------------------------------------------

    def fetcher(self, inner: Fetcher) -> Fetcher:
        return self.metrics.timed(inner)

    def on_report(self, report: PollReport) -> None:
        self.metrics.observe_poll(report)

    def attach(self, daemon: DaemonView) -> None:
        self.daemon = daemon

    async def __aenter__(self) -> Observability:
        await self.endpoint.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.endpoint.close()
        self.reader.dispose()

    # --- reads (worker threads) ----------------------------------------------------------------------------

    def _enabled(self) -> list[str] | None:
        return [f.name for f in self.daemon.config.feeds.enabled] if self.daemon else None

    def _snapshot(self) -> Snapshot:
        with self.reader.connect() as conn:
            return read_snapshot(conn, self.now(), self._enabled())

    def _feeds(self) -> list[FeedView]:
        names = self._enabled()
        with self.reader.connect() as conn:
            views = read_feeds(conn)
        return views if names is None else [f for f in views if f.name in set(names)]

    # --- routes --------------------------------------------------------------------------------------------

    async def health(self) -> Health:
        daemon = self.daemon
        if daemon is None:
            return Health(False, "starting", "the daemon is not running yet")
        try:
            feeds = await asyncio.to_thread(self._feeds)
        except (WatcherError, sa.exc.SQLAlchemyError) as e:
            return Health(False, "database-error", f"cannot read the database: {type(e).__name__}: {e}")
        return assess(
            now=self.now(),
            started_at=daemon.started_at,
            running=daemon.running,
            stopping=daemon.stopping,
            schedule=schedule_of(daemon.config),
            feeds=feeds,
        )

    async def _healthz(self) -> Response:
        h = await self.health()
        body = json.dumps(h.body(), ensure_ascii=False).encode() + b"\n"
        return Response(200 if h.ok else 503, body, "application/json")

    async def _metrics(self) -> Response:
        return Response(200, await asyncio.to_thread(self.metrics.render), METRICS_CONTENT_TYPE)
