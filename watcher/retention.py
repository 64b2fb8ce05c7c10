"""Retention: what the database forgets, and when, so it stops growing after a few months.

Three ages, set in the ``retention:`` block of feeds.yaml (see README, "Retention"):

``entries`` (default 90d)
    An entry that matched no rule loses its text (title, link, summary, content, author, categories) once its
    ``first_seen`` is older than this. Its row stays, with its key: that row *is* the dedupe key. Keeping the
    row rather than copying the key into a separate ``seen`` table means the dedupe path (``known_keys`` and
    the ``UNIQUE(feed_id, key)`` insert of ``record_poll``) is unchanged, so a prune that runs during a poll
    cannot open a window in which an old item looks new; and no schema change is needed. An emptied row
    costs ~100 bytes against a few KB for a full one.
``hits`` (default forever)
    Hits older than this are deleted with their alerts, except a hit whose alert is still pending. Its entry
    then counts as one that matched nothing, and is emptied (above) and later deleted (below). An entry with
    a hit is otherwise kept whole: an alerted item is never alerted twice.
``keys`` (default 365d, at least ``entries``)
    An entry with no (remaining) hit is deleted once older than this, key included. Only then can the same
    item be stored again as new if a feed still carries it (a feed that pins one item for more than a year);
    it alerts again only if a rule matches it now.

The prune works in small batches, one short ``BEGIN IMMEDIATE`` transaction each, so the daemon's polls
interleave with it, and stops between batches when asked to. Deciding what is old takes an injected ``now``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

import sqlalchemy as sa

from .durations import format_duration
from .store import Store, alerts, entries, hits
from .yamlsrc import Source

if TYPE_CHECKING:  # config.py imports this module; APScheduler only matters to the daemon
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    from .config import Config

log = logging.getLogger("watcher.retention")

DAY = 86400.0
RETENTION_KEYS = ("entries", "hits", "keys")
FOREVER = "forever"
BATCH = 500  # rows per transaction: a few milliseconds of write lock each


@dataclass(frozen=True)
class RetentionPolicy:
    """How long things are kept, in seconds; None keeps them forever."""

    entries: float | None = 90 * DAY  # text of entries that matched no rule
    hits: float | None = None  # hits and their alerts
    keys: float | None = 365 * DAY  # rows (dedupe keys) of entries with no hit

    def describe(self) -> str:
        def f(v: float | None) -> str:
            return FOREVER if v is None else format_duration(v)

        return f"entries {f(self.entries)}, hits {f(self.hits)}, keys {f(self.keys)}"


def parse_retention(src: Source, doc: Mapping[str, Any]) -> RetentionPolicy:
    """The ``retention:`` block of feeds.yaml; problems are recorded on `src` with their lines."""
    d = RetentionPolicy()
    block = src.mapping(doc, "retention", "feeds.yaml")
    if block is None:
        return d
    src.check_keys(block, RETENTION_KEYS, "retention")
    values: dict[str, float | None] = {}
    for key in RETENTION_KEYS:
        default = getattr(d, key)
        raw = block.get(key)
        line = Source.line_of(block, key)
        if raw is None:
            values[key] = default
        elif isinstance(raw, str) and raw.strip().lower() == FOREVER:
            values[key] = None
        else:
            seconds = src.duration(block, key, "retention", -1.0)
            if seconds == -1.0:  # src.duration recorded the problem
                values[key] = default
            elif seconds < DAY:
                src.error(
                    line,
                    f"'{key}' in retention must be at least 1d or '{FOREVER}'",
                    "write e.g. 90d (a number alone is seconds)",
                )
                values[key] = default
            else:
                values[key] = seconds
    entries_age, keys_age = values["entries"], values["keys"]
    if keys_age is not None and (entries_age is None or keys_age < entries_age):
        src.error(
            Source.line_of(block, "keys") if "keys" in block else Source.line_of(doc, "retention"),
            f"'keys' in retention ({format_duration(keys_age)}) must be at least 'entries' "
            f"({FOREVER if entries_age is None else format_duration(entries_age)})",
            "dedupe keys must outlive the entries' text; raise 'keys' or write keys: forever",
        )
        values["keys"] = None if entries_age is None else max(keys_age, entries_age)
    return RetentionPolicy(entries=values["entries"], hits=values["hits"], keys=values["keys"])


@dataclass(frozen=True)
class PruneReport:
    """What one prune did (or, in a dry run, would do)."""

    hits_deleted: int  # hits older than retention.hits, with no pending alert
    alerts_deleted: int  # alerts of those hits
    entries_emptied: int  # entries that matched nothing, text removed, key kept
    entries_deleted: int  # entries with no hit older than retention.keys, key included
    dry_run: bool = False
    complete: bool = True  # False when stopped between batches (the rest is done next time)

    def describe(self) -> str:
        verb = "would delete" if self.dry_run else "deleted"
        return (
            f"{verb} {self.hits_deleted} hits ({self.alerts_deleted} alerts), "
            f"{'would empty' if self.dry_run else 'emptied'} {self.entries_emptied} entries (keys kept), "
            f"{verb} {self.entries_deleted} old entries with their keys" + ("" if self.complete else " (interrupted)")
        )


def _cutoff(now: datetime, age: float | None) -> datetime | None:
    return None if age is None else now - timedelta(seconds=age)


def _expired_hits(hits_cutoff: datetime) -> Any:
    """Hits older than the cutoff whose alerts are all settled (sent or dead)."""
    pending = sa.exists().where(alerts.c.hit_id == hits.c.id, alerts.c.state == "pending")
    return sa.and_(hits.c.created_at < hits_cutoff, ~pending)


def _has_kept_hit(hits_cutoff: datetime | None) -> Any:
    """The entry has a hit that this prune keeps (so the entry is kept whole)."""
    kept = sa.exists().where(hits.c.entry_id == entries.c.id)
    if hits_cutoff is None:
        return kept
    return kept.where(~_expired_hits(hits_cutoff))


EMPTIED = sa.and_(entries.c.title == "", entries.c.link == "", entries.c.summary == "", entries.c.content == "")
"""An entry whose text retention removed (or that never had any): only its key and dates remain."""


def prune(
    store: Store,
    policy: RetentionPolicy,
    now: datetime,
    *,
    dry_run: bool = False,
    should_stop: Callable[[], bool] = lambda: False,
    batch: int = BATCH,
) -> PruneReport:
    """Apply `policy` as of `now`. Idempotent; safe while the daemon polls (short batches, re-checked rows)."""
    hits_cutoff = _cutoff(now, policy.hits)
    entries_cutoff = _cutoff(now, policy.entries)
    keys_cutoff = _cutoff(now, policy.keys)
    counts = {"hits": 0, "alerts": 0, "emptied": 0, "deleted": 0}
    stopped = False

    def batches(where: Any, action: Callable[[sa.Connection, list[int]], int], counter: str, table: sa.Table) -> None:
        """Walk `table` by primary key; act on each batch of matching ids in its own transaction."""
        nonlocal stopped
        last = 0
        while not stopped:
            if should_stop():
                stopped = True
                return
            with store.begin() as conn:
                ids = list(
                    conn.execute(
                        sa.select(table.c.id).where(table.c.id > last, where).order_by(table.c.id).limit(batch)
                    ).scalars()
                )
                if not ids:
                    return
                last = ids[-1]
                counts[counter] += len(ids) if dry_run else action(conn, ids)

    if hits_cutoff is not None:

        def delete_hits(conn: sa.Connection, ids: list[int]) -> int:
            # alerts first: no reliance on ON DELETE CASCADE (foreign keys may be off on another database)
            counts["alerts"] += conn.execute(sa.delete(alerts).where(alerts.c.hit_id.in_(ids))).rowcount
            return int(conn.execute(sa.delete(hits).where(hits.c.id.in_(ids))).rowcount)

        if dry_run:
            with store.begin() as conn:
                counts["alerts"] = conn.execute(
                    sa.select(sa.func.count())
                    .select_from(alerts.join(hits, alerts.c.hit_id == hits.c.id))
                    .where(_expired_hits(hits_cutoff))
                ).scalar_one()
        batches(_expired_hits(hits_cutoff), delete_hits, "hits", hits)

    if entries_cutoff is not None:
        stale = sa.and_(entries.c.first_seen < entries_cutoff, ~_has_kept_hit(hits_cutoff), ~EMPTIED)

        def empty(conn: sa.Connection, ids: list[int]) -> int:
            return conn.execute(
                sa.update(entries)
                .where(entries.c.id.in_(ids), entries.c.first_seen < entries_cutoff, ~_has_kept_hit(hits_cutoff))
                .values(title="", link="", summary="", content="", author="", categories=[])
            ).rowcount

        batches(stale, empty, "emptied", entries)

    if keys_cutoff is not None:
        old = sa.and_(entries.c.first_seen < keys_cutoff, ~_has_kept_hit(hits_cutoff))

        def delete_entries(conn: sa.Connection, ids: list[int]) -> int:
            return conn.execute(
                sa.delete(entries).where(
                    entries.c.id.in_(ids), entries.c.first_seen < keys_cutoff, ~_has_kept_hit(hits_cutoff)
                )
            ).rowcount

        batches(old, delete_entries, "deleted", entries)

    return PruneReport(
        hits_deleted=counts["hits"],
        alerts_deleted=counts["alerts"],
        entries_emptied=counts["emptied"],
        entries_deleted=counts["deleted"],
        dry_run=dry_run,
        complete=not stopped,
    )


def tombstones(conn: sa.Connection) -> int:
    """How many entries are only a dedupe key now (for ``watcher db stats``)."""
    return int(conn.execute(sa.select(sa.func.count()).select_from(entries).where(EMPTIED)).scalar_one())


class _Daemon(Protocol):
    """What the retention job needs of the daemon (watcher.scheduler.Daemon)."""

    @property
    def config(self) -> Config: ...
    @property
    def scheduler(self) -> AsyncIOScheduler: ...
    @property
    def stopping(self) -> bool: ...


def schedule_daily(
    daemon: _Daemon,
    store: Store,
    *,
    first_after: float = 300.0,
    every: float = DAY,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> None:
    """Add the retention job to the daemon's scheduler: first run `first_after` seconds after the start (the
    first polls go first), then every day. It reads the policy from the current configuration (a reload
    applies to the next run) and stops between batches when the daemon stops."""
    from apscheduler.triggers.interval import IntervalTrigger

    async def job() -> None:
        if daemon.stopping:
            return
        policy = daemon.config.feeds.retention
        report = await asyncio.to_thread(prune, store, policy, now(), should_stop=lambda: daemon.stopping)
        log.info("retention (%s): %s", policy.describe(), report.describe())

    daemon.scheduler.add_job(
        job,
        IntervalTrigger(seconds=every, start_date=now() + timedelta(seconds=first_after), timezone=UTC),
        id="retention",
        name="retention",
        replace_existing=True,
        coalesce=True,
        max_instances=1,
        misfire_grace_time=max(1, int(every)),
    )
