"""The daemon's state as the database records it: one read-only view shared by ``watcher status``, /metrics
and /healthz, so the three never disagree.

Everything is read in one (deferred, read-only) transaction: a consistent snapshot.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..policy import BACKOFF, RETRY_AFTER
from ..retention import tombstones
from ..store import alerts, entries, feeds, hits

NO_WATCH_ITEM = "-"
"""The watch item shown for hits of rules that carry no tag."""


@dataclass(frozen=True)
class FeedView:
    """One feed as the store knows it."""

    name: str
    last_status: str | None  # ok / not-modified / failed; None: never polled
    last_http_status: int | None
    last_poll_at: datetime | None
    last_success_at: datetime | None
    consecutive_failures: int
    failing_since: datetime | None
    last_error: str | None
    next_poll_at: datetime | None  # earliest next poll (policy.py)
    next_poll_reason: str | None  # interval, max-age, expires, ttl, retry-after, backoff, gone
    gone_at: datetime | None  # disabled by a 410 Gone

    def state(self, now: datetime) -> str:
        """One of FEED_STATES: disabled (410 Gone), backoff (held after failures or by a Retry-After), failing
        (failed, its retry due), never (not polled yet), ok (the last poll succeeded)."""
        if self.gone_at is not None:
            return "disabled"
        if self.next_poll_reason in HELD_BY and self.next_poll_at is not None and self.next_poll_at > now:
            return "backoff"
        if self.consecutive_failures > 0 or self.last_status == "failed":
            return "failing"
        if self.last_status is None:
            return "never"
        return "ok"


FEED_STATES = ("ok", "failing", "backoff", "disabled", "never")
HELD_BY = (BACKOFF, RETRY_AFTER)  # the next-poll reasons that mean "backing off" (not a cache hold)
ALERT_STATES = ("pending", "sent", "dead")


@dataclass(frozen=True)
class Snapshot:
    """Counts and feed states at one instant."""

    taken_at: datetime
    feeds: tuple[FeedView, ...]
    entries: int  # all entry rows
    entries_pruned: int | None  # of which only the dedupe key is left (retention); None: not counted
    hits: int
    hits_by_rule_item: Mapping[tuple[str, str], int]  # (rule, watch item) -> hits; a hit counts once per tag
    hits_today_by_item: Mapping[str, int]  # watch item -> hits recorded since 00:00 UTC
    hits_today: int
    alerts_by_state: Mapping[str, int]  # pending / sent / dead
    alerts_retrying: int  # pending alerts that failed at least once
    oldest_pending_alert: datetime | None

    def feeds_by_state(self) -> dict[str, int]:
        counts = Counter(f.state(self.taken_at) for f in self.feeds)
        return {s: counts.get(s, 0) for s in FEED_STATES}

    @property
    def last_poll(self) -> FeedView | None:
        polled = [f for f in self.feeds if f.last_poll_at is not None]
        return max(polled, key=lambda f: f.last_poll_at or self.taken_at) if polled else None

    @property
    def last_success_at(self) -> datetime | None:
        return max((f.last_success_at for f in self.feeds if f.last_success_at), default=None)


def as_utc(value: Any) -> datetime | None:
    """A stored timestamp of unknown form (datetime, naive UTC text, epoch seconds) as an aware datetime."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, UTC)
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def read_feeds(conn: Connection) -> list[FeedView]:
    q = sa.select(
        feeds.c.name,
        feeds.c.last_status,
        feeds.c.last_http_status,
        feeds.c.last_poll_at,
        feeds.c.last_success_at,
        feeds.c.consecutive_failures,
        feeds.c.failing_since,
        feeds.c.last_error,
        feeds.c.next_poll_at,
        feeds.c.next_poll_reason,
        feeds.c.gone_at,
    ).order_by(feeds.c.name)
    return [
        FeedView(
            name=r.name,
            last_status=r.last_status,
            last_http_status=r.last_http_status,
            last_poll_at=r.last_poll_at,
            last_success_at=r.last_success_at,
            consecutive_failures=r.consecutive_failures or 0,
            failing_since=r.failing_since,
            last_error=r.last_error,
            next_poll_at=r.next_poll_at,
            next_poll_reason=r.next_poll_reason,
            gone_at=r.gone_at,
        )
        for r in conn.execute(q)
    ]


def _tags(raw: Any) -> Sequence[str]:
    value = json.loads(raw) if isinstance(raw, str) else raw
    return [str(t) for t in value] if isinstance(value, list) and value else [NO_WATCH_ITEM]


def read_snapshot(
    conn: Connection, now: datetime, names: Sequence[str] | None = None, *, count_pruned: bool = False
) -> Snapshot:
    """Everything `watcher status` and /metrics show. `names`: only these feeds (the enabled ones).

    Every count here uses an index, except the pruned entries (`count_pruned`): that one reads the whole
    entries table (about 1 ms per MB of database, measured by bench/ops_bench.py), so /metrics leaves it out
    and `watcher status` asks for it.
    """
    feed_views = read_feeds(conn)
    if names is not None:
        wanted = set(names)
        feed_views = [f for f in feed_views if f.name in wanted]
    count = sa.func.count()
    n_entries = conn.execute(sa.select(count).select_from(entries)).scalar_one()
    # tags as text: PostgreSQL's json type cannot be grouped by, its text can (and SQLite stores text anyway)
    tag_text = sa.cast(hits.c.tags, sa.Text)
    by_rule: Counter[tuple[str, str]] = Counter()
    n_hits = 0
    for rule, tags, n in conn.execute(sa.select(hits.c.rule, tag_text, count).group_by(hits.c.rule, tag_text)):
        n_hits += n
        for tag in _tags(tags):
            by_rule[(rule, tag)] += n
    midnight = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    today: Counter[str] = Counter()
    n_today = 0
    for tags, n in conn.execute(sa.select(tag_text, count).where(hits.c.created_at >= midnight).group_by(tag_text)):
        n_today += n
        for tag in _tags(tags):
            today[tag] += n
    by_state = {s: 0 for s in ALERT_STATES}
    for state, n in conn.execute(sa.select(alerts.c.state, count).group_by(alerts.c.state)):
        by_state[state] = n
    retrying, oldest = conn.execute(
        sa.select(sa.func.sum(sa.case((alerts.c.attempts > 0, 1), else_=0)), sa.func.min(alerts.c.created_at)).where(
            alerts.c.state == "pending"
        )
    ).one()
    return Snapshot(
        taken_at=now,
        feeds=tuple(feed_views),
        entries=n_entries,
        entries_pruned=tombstones(conn) if count_pruned else None,
        hits=n_hits,
        hits_by_rule_item=dict(by_rule),
        hits_today_by_item=dict(today),
        hits_today=n_today,
        alerts_by_state=by_state,
        alerts_retrying=int(retrying or 0),
        oldest_pending_alert=as_utc(oldest),
    )
