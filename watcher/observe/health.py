"""Is the daemon healthy? A pure decision, so every case is tested with an injected clock.

Healthy means: the scheduler runs (not stopped, not draining for a shutdown) and some enabled feed was polled
successfully (a 200 or a 304) recently. "Recently" comes from the feeds themselves:

    threshold = 2 x the shortest interval + the longest fetch deadline + GRACE

Two intervals tolerate one missed or late poll (APScheduler may run a job up to half an interval late); the
deadline is the longest a poll may take before it is recorded. Just after a start nothing has been polled
yet: the daemon reports "starting" (healthy) until the first polls are due, i.e. for the feeds' start spread
plus the threshold. When every feed fails (the network is down, the sources moved), the daemon is reported
unhealthy with the feeds' last error: restarting will not fix that, but somebody should look.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ..durations import format_duration
from .snapshot import FeedView

GRACE = 10.0  # seconds of slack for scheduling and the database write of a poll


@dataclass(frozen=True)
class Schedule:
    """What health needs of the configuration: the enabled feeds' timing."""

    intervals: Sequence[float]  # seconds, one per enabled feed
    deadlines: Sequence[float]  # seconds, one per enabled feed
    start_spread: float  # the longest random delay before a feed's first poll

    @property
    def threshold(self) -> float:
        return 2 * min(self.intervals) + max(self.deadlines) + GRACE


@dataclass(frozen=True)
class Health:
    """The answer of /healthz: ``ok`` decides 200 or 503; ``reason`` says why in words."""

    ok: bool
    status: str  # ok, starting, idle, stopping, stopped, stale, failing, database-error
    reason: str
    details: Mapping[str, Any] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        return {"status": self.status, "ok": self.ok, "reason": self.reason, **self.details}


def _iso(dt: datetime | None) -> str | None:
    return dt.isoformat(timespec="seconds").replace("+00:00", "Z") if dt else None


def _ago(now: datetime, then: datetime) -> str:
    return format_duration(max(0.0, (now - then).total_seconds()))


def assess(
    *,
    now: datetime,
    started_at: datetime,
    running: bool,
    stopping: bool,
    schedule: Schedule,
    feeds: Sequence[FeedView],
) -> Health:
    """The daemon's health at `now`. `feeds`: the store's view of the enabled feeds."""
    if stopping:
        return Health(False, "stopping", "shutting down: no new polls, waiting for polls in flight")
    if not running:
        return Health(False, "stopped", "the scheduler is not running")
    if not schedule.intervals:
        return Health(True, "idle", "no feed is enabled in feeds.yaml")
    threshold = schedule.threshold
    last_success = max((f.last_success_at for f in feeds if f.last_success_at), default=None)
    last_poll = max((f.last_poll_at for f in feeds if f.last_poll_at), default=None)
    details: dict[str, Any] = {
        "last_success": _iso(last_success),
        "last_poll": _iso(last_poll),
        "threshold_seconds": round(threshold, 1),
        "feeds": len(schedule.intervals),
    }
    if last_success is not None and now - last_success <= timedelta(seconds=threshold):
        return Health(True, "ok", f"last successful poll {_ago(now, last_success)} ago", details)
    window = schedule.start_spread + threshold
    if now - started_at <= timedelta(seconds=window):
        return Health(True, "starting", f"started {_ago(now, started_at)} ago; first polls due", details)
    if last_poll is None or now - last_poll > timedelta(seconds=threshold):
        since = f"since {_iso(last_poll)}" if last_poll else "since the start"
        return Health(
            False,
            "stale",
            f"no poll {since}, expected every {format_duration(min(schedule.intervals))}: the scheduler is stuck",
            details,
        )
    failing = [f for f in feeds if f.last_status == "failed"]
    latest = max(failing, key=lambda f: f.last_poll_at or now) if failing else None
    error = f"; latest: {latest.name}: {latest.last_error}" if latest and latest.last_error else ""
    last = f"last success {_ago(now, last_success)} ago" if last_success else "no feed ever succeeded"
    return Health(
        False,
        "failing",
        f"polls run but none succeeded for {format_duration(threshold)} ({last}){error}",
        details,
    )
