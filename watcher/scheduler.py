"""The daemon: APScheduler 3.11 wiring, signals, reload and a clean shutdown. No polling logic here.

APScheduler facts this relies on (measured, see LIBRARY-NOTES): its AsyncIOExecutor cancels running coroutine
jobs on shutdown whatever ``wait`` says, so the daemon pauses the scheduler, waits for its own set of in-flight
polls with a deadline, and only then shuts it down. ``jitter`` drifts, so feeds are spread with a random
``start_date`` instead. Jobs live in the memory store and are rebuilt from feeds.yaml by id on every reload.

A feed's job fires on its interval. When a poll ends with a hold (backoff, Retry-After, max-age, Expires, <ttl>:
see policy.py), the job is moved to exactly the end of the hold (``modify(next_run_time=...)``), so a feed
backing off for 6 h wakes once, not every interval; the interval resumes from there. Holds are stored, so after
a restart the first run of a held feed skips (the pipeline checks) and moves the job the same way. A feed
disabled by 410 Gone keeps its job; each run is a cheap skip until its URL changes.

The health job checks every feed's condition on a timer and sends operational alerts (health.py).
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import signal
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.schedulers.base import STATE_RUNNING
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from .config import Config, FeedConfig
from .errors import ConfigError
from .health import HealthMonitor, health_settings, ops_destinations
from .models import PollReport
from .notify import Deliverer, Renderer
from .pipeline import Pipeline
from .policy import HOLDS
from .rules.native import NATIVE

log = logging.getLogger("watcher.daemon")

DELIVERY_INTERVAL = 30.0  # seconds between outbox drains (retries); polls with alerts drain at once
RELOAD_CHECK_INTERVAL = 5.0  # seconds between checks of the config files' modification times
HEALTH_CHECK_INTERVAL = 300.0  # seconds between feed-health checks (alerts thresholds are hours)


class Daemon:
    """Runs feeds on their intervals until stopped."""

    def __init__(
        self,
        config: Config,
        pipeline: Pipeline,
        deliverer: Deliverer,
        *,
        load_config: Callable[[], Config],
        drain_deadline: float = 30.0,
        rng: random.Random | None = None,
        health: HealthMonitor | None = None,
        health_interval: float = HEALTH_CHECK_INTERVAL,
    ) -> None:
        self.config = config
        self.pipeline = pipeline
        self.deliverer = deliverer
        self.health = health
        self.health_interval = health_interval
        self.load_config = load_config
        self.drain_deadline = drain_deadline
        self.rng = rng or random.Random()
        self.scheduler = AsyncIOScheduler(timezone=UTC)
        self._inflight: set[asyncio.Task[object]] = set()
        self._drain_task: asyncio.Task[None] | None = None
        self._drain_again = False
        self._stop = asyncio.Event()
        self._mtimes = self._config_mtimes()
        self.cycles = 0
        self.started_at = datetime.now(UTC)  # reset by run(); /healthz's "starting" window counts from it

    @property
    def stopping(self) -> bool:
        """True once a stop was asked for: no new polls start, polls in flight drain."""
        return self._stop.is_set()

    @property
    def running(self) -> bool:
        """True while the scheduler runs jobs (not before run(), not while paused for the drain)."""
        return bool(self.scheduler.state == STATE_RUNNING)

    # --- jobs --------------------------------------------------------------------------------------------

    def _first_run(self, feed: FeedConfig) -> datetime:
        spread = self.config.feeds.defaults.start_offset
        if spread is None:
            spread = min(feed.interval, 60.0)
        return datetime.now(UTC) + timedelta(seconds=self.rng.uniform(0, spread))

    def _add_feed_job(self, feed: FeedConfig) -> None:
        first = self._first_run(feed)
        self.scheduler.add_job(
            self._poll_job,
            IntervalTrigger(seconds=feed.interval, start_date=first, timezone=UTC),
            # explicit: a start_date already past when the scheduler starts (a 0s offset) would otherwise
            # put the first poll a whole interval later
            next_run_time=first,
            args=[feed.name],
            id=f"feed:{feed.name}",
            name=f"poll {feed.name}",
            replace_existing=True,
            coalesce=True,
            max_instances=1,
            misfire_grace_time=max(1, int(feed.interval / 2)),
        )

    def sync_jobs(self, old: Config | None) -> None:
        """Make the scheduled jobs match feeds.yaml: add, remove, and reschedule changed feeds."""
        wanted = {f.name: f for f in self.config.feeds.enabled}
        before = {f.name: f for f in old.feeds.enabled} if old else {}
        for job in self.scheduler.get_jobs():
            if job.id.startswith("feed:") and job.id[5:] not in wanted:
                job.remove()
                log.info("feed %s removed from the schedule", job.id[5:])
        for name, feed in wanted.items():
            prev = before.get(name)
            # a new URL is polled at once too (it may end a hold or a 410), not when the old hold ends
            if (
                prev is None
                or prev.interval != feed.interval
                or prev.url != feed.url
                or self.scheduler.get_job(f"feed:{name}") is None
            ):
                self._add_feed_job(feed)

    async def _tracked(self, coro: object) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._inflight.add(task)
        try:
            await coro  # type: ignore[misc]
        finally:
            self._inflight.discard(task)

    async def _poll_job(self, name: str) -> None:
        if self._stop.is_set():
            return
        feed = next((f for f in self.config.feeds.enabled if f.name == name), None)
        if feed is None:
            return
        await self._tracked(self._poll_and_deliver(feed))

    async def _poll_and_deliver(self, feed: FeedConfig) -> None:
        report = await self.pipeline.poll_feed(feed)
        self._follow_hold(report)
        if report.alerts and self._stop.is_set():
            await self.deliverer.deliver_pending()  # stopping: the poll in flight delivers what it found
        elif report.alerts:
            self.request_drain()  # a task of its own: a hanging destination never holds up this feed's polls

    def _follow_hold(self, report: PollReport) -> None:
        """Move the feed's job to the end of a hold, so it neither polls early nor wakes up for nothing."""
        if report.next_poll_at is None or report.next_poll_reason not in HOLDS:
            return
        job = self.scheduler.get_job(f"feed:{report.feed}")
        if job is not None:
            job.modify(next_run_time=report.next_poll_at)
            log.debug("feed %s: next poll at %s (%s)", report.feed, report.next_poll_at, report.next_poll_reason)

    async def _health_job(self) -> None:
        if self.health is not None and not self._stop.is_set():
            await self._tracked(self.health.check([f.name for f in self.config.feeds.enabled]))

    async def _deliver_job(self) -> None:
        self.request_drain()

    def request_drain(self) -> None:
        """Drain the outbox now; if a drain is running, run one more right after it (it may have missed rows)."""
        if self._stop.is_set():
            return
        if self._drain_task is not None and not self._drain_task.done():
            self._drain_again = True
            return
        self._drain_task = asyncio.get_running_loop().create_task(self._tracked(self._drain()))

    async def _drain(self) -> None:
        while True:
            self._drain_again = False
            try:
                report = await self.deliverer.deliver_pending()
                if report.sent or report.failed:
                    log.debug("drain: %d sent, %d failed, %d held", report.sent, report.failed, report.held)
                self._schedule_next_drain(await self.deliverer.next_due())
            except Exception:  # the database or a bug: log it, the next drain tries again
                log.exception("alert delivery failed; retrying at the next drain")
            if not self._drain_again or self._stop.is_set():
                return

    def _schedule_next_drain(self, due: datetime | None) -> None:
        """Wake up exactly when the next held digest or retry is due (the 30 s job is only a safety net)."""
        if due is None or self._stop.is_set():
            return
        at = max(due, datetime.now(UTC) + timedelta(seconds=1))
        self.scheduler.add_job(
            self._deliver_job,
            DateTrigger(run_date=at, timezone=UTC),
            id="deliver-due",
            replace_existing=True,
            misfire_grace_time=None,
        )

    # --- reload ------------------------------------------------------------------------------------------

    def _config_mtimes(self) -> tuple[float, float]:
        def mtime(p: str) -> float:
            try:
                return os.stat(p).st_mtime
            except OSError:
                return 0.0

        return mtime(self.config.feeds.path), mtime(self.config.rules.path)

    def reload(self) -> bool:
        """Load both files again; on any error keep the running configuration and log every problem."""
        try:
            new = self.load_config()
        except ConfigError as e:
            for issue in e.issues:
                log.error("config not reloaded: %s", issue)
            return False
        old, self.config = self.config, new
        self.deliverer.update(new.rules.destinations, new.rules.rule_policies, Renderer(new.rules.templates))
        if self.health is not None:
            self.health.destinations = ops_destinations(new)
            self.health.settings = health_settings(new)
        self.sync_jobs(old)
        log.info("configuration reloaded: %d feeds, %d rules", len(new.feeds.enabled), len(new.rules.rules))
        return True

    async def _watch_job(self) -> None:
        now = self._config_mtimes()
        if now != self._mtimes:
            self._mtimes = now
            self.reload()

    # --- lifecycle ---------------------------------------------------------------------------------------

    def request_stop(self) -> None:
        if not self._stop.is_set():
            log.info(
                "stopping: no new polls; waiting up to %gs for %d in flight", self.drain_deadline, len(self._inflight)
            )
            self._stop.set()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        loop.add_signal_handler(signal.SIGHUP, self.reload)
        self.sync_jobs(None)
        self.scheduler.add_job(
            self._deliver_job,
            IntervalTrigger(seconds=DELIVERY_INTERVAL, timezone=UTC),
            id="deliver",
            coalesce=True,
            max_instances=1,
            next_run_time=datetime.now(UTC),
        )
        self.scheduler.add_job(
            self._watch_job,
            IntervalTrigger(seconds=RELOAD_CHECK_INTERVAL, timezone=UTC),
            id="watch-config",
            coalesce=True,
            max_instances=1,
        )
        if self.health is not None:
            self.scheduler.add_job(
                self._health_job,
                IntervalTrigger(seconds=self.health_interval, timezone=UTC),
                id="health",
                coalesce=True,
                max_instances=1,
                misfire_grace_time=max(1, int(self.health_interval / 2)),
            )
        self.started_at = datetime.now(UTC)
        self.scheduler.start()
        log.info(
            "watcher running: %d feeds, %d rules; database %s",
            len(self.config.feeds.enabled),
            len(self.config.rules.rules),
            "open",
        )
        if not NATIVE:
            log.warning(
                "the matcher's C extension is not built (no C compiler at install?): rules are matched by its"
                " Python steps, the same results ~1.4x slower; reinstall with a C compiler to build it"
            )
        try:
            await self._stop.wait()
        finally:
            self.scheduler.pause()
            deadline = loop.time() + self.drain_deadline
            while self._inflight and loop.time() < deadline:  # a finishing poll may start a drain: wait for it too
                await asyncio.wait(set(self._inflight), timeout=max(0.0, deadline - loop.time()))
            still = set(self._inflight)
            if still:
                for t in still:
                    t.cancel()
                log.warning(
                    "%d polls or deliveries did not finish within %gs and were cancelled (feeds are polled and "
                    "pending alerts sent again at the next start; nothing was half-written)",
                    len(still),
                    self.drain_deadline,
                )
                await asyncio.gather(*still, return_exceptions=True)
            self.scheduler.shutdown(wait=False)
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)
            log.info("watcher stopped")
