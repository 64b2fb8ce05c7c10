"""Is the daemon healthy? A pure decision, so every case is tested with an injected clock.

Healthy means: the scheduler runs (not stopped, not draining for a shutdown) and at least one enabled feed is
*fine*: its last poll succeeded (a 200 or a 304) and it is not overdue. Each poll stores the feed's next poll
(policy.py: one interval later, or later when a cache header or a backoff says so), so a feed is overdue once

    now > next poll + its interval + its fetch deadline + GRACE

(for a feed polled on its interval that is the last success + 2 x interval + deadline + GRACE: one late or
missed poll is tolerated, as APScheduler may run a job up to half an interval late; the deadline is the
longest a poll may take before it is recorded). Per feed rather than "the shortest interval", so a feed that
a publisher's max-age holds for hours does not read as a stuck daemon.

Otherwise, in this order: just after a start nothing has been polled yet, which is "starting" (healthy) until
the first polls are overdue; every feed overdue means nothing polls: "stale", the scheduler is stuck;
polls run but none succeeds (the network is down, the sources moved): "failing", with the latest error.
Restarting will not fix "failing", but somebody should look. Feeds disabled by a 410 Gone are left out.
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
class Timing:
    """One enabled feed's schedule, from feeds.yaml."""

    interval: float  # seconds between polls
    deadline: float  # seconds one fetch may take

    @property
    def slack(self) -> float:
        """How late after its due time a poll may be recorded before the feed counts as overdue."""
        return self.interval + self.deadline + GRACE


@dataclass(frozen=True)
class Schedule:
    """What health needs of the configuration: the enabled feeds' timing."""

    feeds: Mapping[str, Timing]  # enabled feed name -> timing
    start_spread: float  # the longest random delay before a feed's first poll


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


def due(f: FeedView, t: Timing, started_at: datetime, start_spread: float) -> datetime:
    """When the feed's next poll is (or was) due."""
    if f.next_poll_at is not None:
        return f.next_poll_at
    if f.last_poll_at is not None:
        return f.last_poll_at + timedelta(seconds=t.interval)
    return started_at + timedelta(seconds=start_spread)


def overdue(f: FeedView, t: Timing, now: datetime, started_at: datetime, start_spread: float) -> bool:
    """The feed should have been polled (and the poll recorded) by now and was not."""
    return now > due(f, t, started_at, start_spread) + timedelta(seconds=t.slack)


def assess(
    *,
    now: datetime,
    started_at: datetime,
    running: bool,
    stopping: bool,
    schedule: Schedule,
    feeds: Sequence[FeedView],
) -> Health:
    """The daemon's health at `now`. `feeds`: the store's view of the feeds (others than the enabled are ignored)."""
    if stopping:
        return Health(False, "stopping", "shutting down: no new polls, waiting for polls in flight")
    if not running:
        return Health(False, "stopped", "the scheduler is not running")
    views = {f.name: f for f in feeds}
    watched = [(views.get(name) or _unpolled(name), t) for name, t in schedule.feeds.items()]
    watched = [(f, t) for f, t in watched if f.gone_at is None]
    if not watched:
        what = "no feed is enabled in feeds.yaml" if not schedule.feeds else "every enabled feed is disabled (410)"
        return Health(True, "idle", what)
    last_success = max((f.last_success_at for f, _ in watched if f.last_success_at), default=None)
    last_poll = max((f.last_poll_at for f, _ in watched if f.last_poll_at), default=None)
    details: dict[str, Any] = {"last_success": _iso(last_success), "last_poll": _iso(last_poll), "feeds": len(watched)}
    late = {f.name for f, t in watched if overdue(f, t, now, started_at, schedule.start_spread)}

    fine = [f for f, _ in watched if f.last_success_at and f.consecutive_failures == 0 and f.name not in late]
    if fine:
        latest = max(f.last_success_at for f in fine if f.last_success_at)
        reason = f"{len(fine)} of {len(watched)} feeds fine; last success {_ago(now, latest)} ago"
        return Health(True, "ok", reason, details)
    pending = [f for f, _ in watched if f.last_poll_at is None and f.name not in late]
    if pending:
        return Health(
            True, "starting", f"started {_ago(now, started_at)} ago; {len(pending)} feeds not polled yet", details
        )
    if len(late) == len(watched):
        since = f"last poll {_ago(now, last_poll)} ago" if last_poll else f"started {_ago(now, started_at)} ago"
        return Health(False, "stale", f"no feed was polled when due ({since}): the scheduler is stuck", details)
    failing = [f for f, _ in watched if f.consecutive_failures > 0 or f.last_status == "failed"]
    latest_failure = max(failing, key=lambda f: f.last_poll_at or now) if failing else None
    error = f"; latest: {latest_failure.name}: {latest_failure.last_error}" if latest_failure else ""
    last = f"last success {_ago(now, last_success)} ago" if last_success else "no feed ever succeeded"
    return Health(False, "failing", f"polls run but no feed is fine ({last}){error}", details)


def _unpolled(name: str) -> FeedView:
    """An enabled feed the store does not know yet: its first poll is about to come."""
    return FeedView(name, None, None, None, None, 0, None, None, None, None, None)
