"""Prometheus metrics of a running daemon (``/metrics``), with prometheus-client.

Two sources:

* in-process instruments, updated as polls happen: ``watcher_polls_total{status}``,
  ``watcher_new_entries_total`` and the ``watcher_fetch_duration_seconds{result}`` histogram (timed around the
  fetcher, so it measures the network part of a poll only);
* gauges read from the database at each scrape (:class:`StoreCollector`): feeds by state and in backoff,
  entries, hits by rule and watch item, alerts by state, the outbox. They survive restarts and agree with
  ``watcher status``, because both read the same :class:`~watcher.observe.snapshot.Snapshot`.

Plus the process (CPU, memory, file descriptors), platform and GC collectors of prometheus-client. Each daemon
has its own registry: nothing is global, so tests and several daemons in one process do not mix.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

import sqlalchemy as sa
from prometheus_client import (
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric

from .. import __version__
from ..errors import WatcherError
from ..fetch import Fetcher, Request
from ..models import FetchResult, PollReport
from .snapshot import ALERT_STATES, FEED_STATES, Snapshot

log = logging.getLogger("watcher.metrics")

FETCH_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
POLL_STATUSES = ("ok", "not-modified", "failed")
FETCH_RESULTS = ("fetched", "not_modified", "failed")


class StoreCollector:
    """Gauges read from the database at scrape time. A database error is reported as ``watcher_database_up 0``."""

    def __init__(self, read: Callable[[], Snapshot]) -> None:
        self.read = read

    def collect(self) -> Iterable[Metric]:
        up = GaugeMetricFamily("watcher_database_up", "1 when the database could be read for this scrape")
        try:
            snap = self.read()
        except (WatcherError, sa.exc.SQLAlchemyError) as e:
            log.warning("metrics: cannot read the database: %s", e)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up

        by_state = snap.feeds_by_state()
        g = GaugeMetricFamily("watcher_feeds", "Enabled feeds by state of their last poll", labels=["state"])
        for state in FEED_STATES:
            g.add_metric([state], by_state[state])
        yield g
        yield GaugeMetricFamily(
            "watcher_feeds_in_backoff", "Feeds waiting out a backoff before their next poll", value=by_state["backoff"]
        )

        yield GaugeMetricFamily(
            "watcher_entries", "Entries stored (including those retention reduced to a dedupe key)", value=snap.entries
        )

        g = GaugeMetricFamily(
            "watcher_hits",
            "Hits stored, by rule and watch item (a hit counts once per tag)",
            labels=["rule", "watch_item"],
        )
        for (rule, item), n in sorted(snap.hits_by_rule_item.items()):
            g.add_metric([rule, item], n)
        yield g

        g = GaugeMetricFamily("watcher_alerts", "Alerts by delivery state", labels=["state"])
        for state in sorted(set(ALERT_STATES) | set(snap.alerts_by_state)):
            g.add_metric([state], snap.alerts_by_state.get(state, 0))
        yield g
        yield GaugeMetricFamily(
            "watcher_outbox_depth", "Alerts waiting to be delivered", value=snap.alerts_by_state.get("pending", 0)
        )
        yield GaugeMetricFamily(
            "watcher_outbox_retrying", "Pending alerts that failed at least once", value=snap.alerts_retrying
        )
        oldest = snap.oldest_pending_alert
        yield GaugeMetricFamily(
            "watcher_outbox_oldest_age_seconds",
            "Age of the oldest pending alert (0 when the outbox is empty)",
            value=max(0.0, (snap.taken_at - oldest).total_seconds()) if oldest else 0.0,
        )
        for name, when, text in (
            ("watcher_last_poll_timestamp_seconds", snap.last_poll.last_poll_at if snap.last_poll else None, "any"),
            ("watcher_last_success_timestamp_seconds", snap.last_success_at, "successful"),
        ):
            help_text = f"Unix time of the last {text} poll of an enabled feed (0: never)"
            yield GaugeMetricFamily(name, help_text, value=when.timestamp() if when else 0)


class Metrics:
    """The registry of one daemon, its in-process instruments and its database gauges."""

    def __init__(self, read: Callable[[], Snapshot], *, process: bool = True) -> None:
        # no `*_created` series beside each counter: they double the output and no dashboard reads them
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry()
        self.polls = Counter("watcher_polls", "Feed polls by outcome", ["status"], registry=self.registry)
        for status in POLL_STATUSES:
            self.polls.labels(status)
        self.new_entries = Counter("watcher_new_entries", "Entries stored for the first time", registry=self.registry)
        self.fetch_duration = Histogram(
            "watcher_fetch_duration_seconds",
            "Time to fetch one feed (the HTTP part of a poll), by result",
            ["result"],
            buckets=FETCH_BUCKETS,
            registry=self.registry,
        )
        for result in FETCH_RESULTS:
            self.fetch_duration.labels(result)
        Info("watcher_build", "watcher's version", registry=self.registry).info({"version": __version__})
        self.registry.register(StoreCollector(read))
        if process:
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)
            GCCollector(registry=self.registry)

    def observe_poll(self, report: PollReport) -> None:
        """The pipeline's per-poll hook."""
        self.polls.labels(report.status).inc()
        self.new_entries.inc(report.new_entries)

    def timed(self, fetcher: Fetcher) -> Fetcher:
        return TimedFetcher(fetcher, self.fetch_duration)

    def render(self) -> bytes:
        """The text exposition (blocking: it reads the database; call it from a thread)."""
        return generate_latest(self.registry)


class TimedFetcher:
    """A Fetcher that records how long each fetch took in a histogram, by result kind."""

    def __init__(self, inner: Fetcher, histogram: Histogram) -> None:
        self.inner = inner
        self.histogram = histogram

    async def fetch(self, req: Request) -> FetchResult:
        started = time.perf_counter()
        result = await self.inner.fetch(req)
        self.histogram.labels(result.kind).observe(time.perf_counter() - started)
        return result
