"""SQLite (or any SQLAlchemy 2 database) storage: the schema and the few queries the pipeline and CLI need.

Writes happen in ``BEGIN IMMEDIATE`` transactions (a deferred transaction that reads then writes fails at once
on a locked SQLite file, whatever the busy timeout: measured), the file is in WAL mode with a busy timeout so a
CLI reading while the daemon writes waits instead of failing, and foreign keys are on.

The schema carries a version in ``meta``; migrations (Alembic) can take over from that number.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from .errors import StoreError
from .models import Entry, FeedState, Hit

SCHEMA_VERSION = 1


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out (SQLite keeps no zone)."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


metadata = sa.MetaData()

meta = sa.Table("meta", metadata, sa.Column("key", sa.String(64), primary_key=True), sa.Column("value", sa.Text))

feeds = sa.Table(
    "feeds",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("title", sa.Text),
    sa.Column("etag", sa.Text),
    sa.Column("last_modified", sa.Text),
    sa.Column("last_poll_at", UTCDateTime),
    sa.Column("last_success_at", UTCDateTime),
    sa.Column("last_status", sa.String(20)),  # ok / not-modified / failed
    sa.Column("last_http_status", sa.Integer),
    sa.Column("last_error", sa.Text),
    sa.Column("last_warning", sa.Text),  # a recoverable problem of the last parse (ill-formed XML...)
    sa.Column("consecutive_failures", sa.Integer, nullable=False, server_default="0"),
    sa.Column("failing_since", UTCDateTime),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

entries = sa.Table(
    "entries",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("feed_id", sa.Integer, sa.ForeignKey("feeds.id", ondelete="CASCADE"), nullable=False),
    sa.Column("key", sa.Text, nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("link", sa.Text, nullable=False),
    sa.Column("summary", sa.Text, nullable=False),
    sa.Column("content", sa.Text, nullable=False),
    sa.Column("author", sa.Text, nullable=False),
    sa.Column("categories", sa.JSON, nullable=False),
    sa.Column("published", UTCDateTime),
    sa.Column("first_seen", UTCDateTime, nullable=False),
    sa.UniqueConstraint("feed_id", "key", name="uq_entries_feed_key"),
)

hits = sa.Table(
    "hits",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("entry_id", sa.Integer, sa.ForeignKey("entries.id", ondelete="CASCADE"), nullable=False),
    sa.Column("rule", sa.String(200), nullable=False),
    sa.Column("rule_version", sa.String(40), nullable=False),
    sa.Column("tags", sa.JSON, nullable=False),
    sa.Column("severity", sa.String(20), nullable=False),
    sa.Column("matched", sa.JSON, nullable=False),
    sa.Column("details", sa.JSON, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("entry_id", "rule", name="uq_hits_entry_rule"),
)
sa.Index("ix_hits_created", hits.c.created_at)
sa.Index("ix_hits_rule", hits.c.rule)

alerts = sa.Table(
    "alerts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("hit_id", sa.Integer, sa.ForeignKey("hits.id", ondelete="CASCADE"), nullable=False),
    sa.Column("destination", sa.String(200), nullable=False),
    sa.Column("state", sa.String(20), nullable=False),  # pending / sent / dead
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("delivered", sa.JSON, nullable=False),  # labels of the URLs that already accepted it
    sa.Column("last_error", sa.Text),
    sa.Column("next_attempt_at", UTCDateTime, nullable=False),
    sa.Column("sent_at", UTCDateTime),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("hit_id", "destination", name="uq_alerts_hit_destination"),
)
sa.Index("ix_alerts_state_next", alerts.c.state, alerts.c.next_attempt_at)


def database_url(value: str) -> str:
    """A plain path becomes a SQLite URL; an SQLAlchemy URL stays as it is."""
    if "://" in value:
        return value
    return "sqlite:///" + str(Path(value).expanduser())


def _sqlite_setup(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # let SQLAlchemy's begin event emit BEGIN itself
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=10000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


@dataclass(frozen=True)
class PendingAlert:
    """An alert row joined with what a message needs."""

    id: int
    destination: str
    attempts: int
    delivered: tuple[str, ...]
    rule: str
    severity: str
    tags: tuple[str, ...]
    matched: tuple[str, ...]
    details: Mapping[str, Any]
    title: str
    link: str
    summary: str
    feed: str
    published: datetime | None
    first_seen: datetime


@dataclass(frozen=True)
class PollWrite:
    """What one successful poll stores, in one transaction."""

    feed_id: int
    now: datetime
    url: str
    http_status: int | None
    etag: str | None
    last_modified: str | None
    title: str | None
    entries: Sequence[Entry]
    hits: Mapping[str, Sequence[Hit]]  # entry key -> hits
    alert_cutoff: datetime | None  # alert only on entries published at/after it (first poll); None: all new
    warning: str | None = None  # a recoverable parse problem, shown in `watcher feeds`


@dataclass(frozen=True)
class PollCounts:
    new_entries: int
    hits: int
    alerts: int


class Store:
    """The database. Thread-safe through its engine; the pipeline funnels writes through one thread."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def open(cls, url: str, *, create: bool = True) -> Store:
        url = database_url(url)
        try:
            engine = sa.create_engine(url, future=True)
            if engine.dialect.name == "sqlite":
                _sqlite_setup(engine)
                db = engine.url.database
                if db and db != ":memory:":
                    parent = Path(db).expanduser().resolve().parent
                    if not parent.is_dir():
                        raise StoreError(f"cannot open database {db}: folder {parent} does not exist")
            store = cls(engine)
            if create:
                store.create()
            return store
        except sa.exc.SQLAlchemyError as e:
            raise StoreError(
                f"cannot open database {sa.engine.make_url(url).render_as_string(hide_password=True)}: "
                f"{e.__class__.__name__}: {getattr(e, 'orig', e)}"
            ) from e
        except sa.exc.ArgumentError as e:
            raise StoreError(f"invalid database URL: {e}") from e

    def create(self) -> None:
        with self.begin() as conn:
            metadata.create_all(conn)
            row = conn.execute(sa.select(meta.c.value).where(meta.c.key == "schema_version")).scalar()
            if row is None:
                conn.execute(sa.insert(meta).values(key="schema_version", value=str(SCHEMA_VERSION)))
            elif int(row) > SCHEMA_VERSION:
                raise StoreError(
                    f"database schema {row} is newer than this watcher ({SCHEMA_VERSION}): upgrade watcher"
                )

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        try:
            with self.engine.begin() as conn:
                yield conn
        except sa.exc.OperationalError as e:
            raise StoreError(f"database error: {getattr(e, 'orig', e)}") from e

    def _insert(self, conn: Connection, table: sa.Table) -> Any:
        return {"sqlite": sqlite.insert, "postgresql": postgresql.insert}[conn.dialect.name](table)

    # --- feeds -------------------------------------------------------------------------------------------

    def sync_feeds(self, configured: Iterable[tuple[str, str]], now: datetime) -> dict[str, FeedState]:
        """Make sure every (name, url) has a row; a changed URL resets the HTTP validators."""
        wanted = dict(configured)  # a name given twice keeps its last URL
        with self.begin() as conn:
            # One read of every row, not one query per feed (2,000 feeds: 2,000 round trips per `watcher poll`).
            rows = {r.name: r for r in conn.execute(sa.select(feeds.c.id, feeds.c.name, feeds.c.url))}
            new = [
                dict(name=name, url=url, created_at=now, consecutive_failures=0)
                for name, url in wanted.items()
                if name not in rows
            ]
            if new:
                conn.execute(sa.insert(feeds), new)
            for name, url in wanted.items():
                row = rows.get(name)
                if row is not None and row.url != url:
                    conn.execute(
                        sa.update(feeds).where(feeds.c.id == row.id).values(url=url, etag=None, last_modified=None)
                    )
        return {s.name: s for s in self.feed_states()}

    def feed_states(self) -> list[FeedState]:
        with self.begin() as conn:
            rows = conn.execute(sa.select(feeds)).all()
        return [_state(r) for r in rows]

    def feed_state(self, name: str) -> FeedState | None:
        with self.begin() as conn:
            row = conn.execute(sa.select(feeds).where(feeds.c.name == name)).first()
        return _state(row) if row is not None else None

    def known_keys(self, feed_id: int, keys: Sequence[str]) -> set[str]:
        found: set[str] = set()
        with self.begin() as conn:
            for i in range(0, len(keys), 500):
                chunk = keys[i : i + 500]
                found.update(
                    conn.execute(
                        sa.select(entries.c.key).where(entries.c.feed_id == feed_id, entries.c.key.in_(chunk))
                    ).scalars()
                )
        return found

    def record_not_modified(self, feed_id: int, now: datetime, http_status: int) -> None:
        with self.begin() as conn:
            conn.execute(
                sa.update(feeds)
                .where(feeds.c.id == feed_id)
                .values(
                    last_poll_at=now,
                    last_success_at=now,
                    last_status="not-modified",
                    last_http_status=http_status,
                    last_error=None,
                    consecutive_failures=0,
                    failing_since=None,
                )
            )

    def record_failure(self, feed_id: int, now: datetime, http_status: int | None, error: str) -> None:
        with self.begin() as conn:
            conn.execute(
                sa.update(feeds)
                .where(feeds.c.id == feed_id)
                .values(
                    last_poll_at=now,
                    last_status="failed",
                    last_http_status=http_status,
                    last_error=error[:2000],
                    consecutive_failures=feeds.c.consecutive_failures + 1,
                    failing_since=sa.func.coalesce(feeds.c.failing_since, now),
                )
            )

    def record_poll(self, w: PollWrite) -> PollCounts:
        """Store new entries, their hits and the hits' pending alerts, and the feed's state: one transaction.

        Entries already stored are skipped by the unique key (so a poll that runs twice, or a crash and a
        restart, cannot store or alert anything twice).
        """
        n_hits = n_alerts = 0
        with self.begin() as conn:
            inserted: dict[str, int] = {}
            if w.entries:
                # One executemany of a statement compiled once (SQLAlchemy batches it into multi-row INSERT ...
                # RETURNING itself). Building .values(rows) instead compiled a new 500-parameter statement per
                # poll: 8 ms of CPU for 50 entries, a quarter of what parsing them costs (bench/poll.py).
                res = conn.execute(
                    self._insert(conn, entries)
                    .on_conflict_do_nothing(index_elements=["feed_id", "key"])
                    .returning(entries.c.id, entries.c.key),
                    [
                        dict(
                            feed_id=w.feed_id,
                            key=e.key,
                            title=e.title,
                            link=e.link,
                            summary=e.summary,
                            content=e.content,
                            author=e.author,
                            categories=list(e.categories),
                            published=e.published,
                            first_seen=w.now,
                        )
                        for e in w.entries
                    ],
                )
                inserted.update({r.key: r.id for r in res})
            by_key = {e.key: e for e in w.entries}
            # Statements without .values(): their compiled form is cached; the values travel as parameters.
            hit_ins = (
                self._insert(conn, hits)
                .on_conflict_do_nothing(index_elements=["entry_id", "rule"])
                .returning(hits.c.id)
            )
            alert_ins = self._insert(conn, alerts).on_conflict_do_nothing(index_elements=["hit_id", "destination"])
            for key, entry_id in inserted.items():
                entry = by_key[key]
                for hit in w.hits.get(key, ()):
                    hit_id = conn.execute(
                        hit_ins,
                        dict(
                            entry_id=entry_id,
                            rule=hit.rule,
                            rule_version=hit.rule_version,
                            tags=list(hit.tags),
                            severity=hit.severity,
                            matched=list(hit.matched),
                            details=dict(hit.details),
                            created_at=w.now,
                        ),
                    ).scalar()
                    if hit_id is None:
                        continue
                    n_hits += 1
                    if w.alert_cutoff is not None and (entry.published is None or entry.published < w.alert_cutoff):
                        continue  # backlog of a new feed: stored, not alerted
                    for dest in dict.fromkeys(hit.notify):
                        conn.execute(
                            alert_ins,
                            dict(
                                hit_id=hit_id,
                                destination=dest,
                                state="pending",
                                attempts=0,
                                delivered=[],
                                next_attempt_at=w.now,
                                created_at=w.now,
                            ),
                        )
                        n_alerts += 1
            conn.execute(
                sa.update(feeds)
                .where(feeds.c.id == w.feed_id)
                .values(
                    url=w.url if w.url.startswith(("http", "file")) else feeds.c.url,
                    etag=w.etag,
                    last_modified=w.last_modified,
                    title=w.title,
                    last_poll_at=w.now,
                    last_success_at=w.now,
                    last_status="ok",
                    last_http_status=w.http_status,
                    last_error=None,
                    last_warning=w.warning[:2000] if w.warning else None,
                    consecutive_failures=0,
                    failing_since=None,
                )
            )
        return PollCounts(len(inserted), n_hits, n_alerts)

    # --- alerts ------------------------------------------------------------------------------------------

    def pending_alerts(self, now: datetime, limit: int = 500) -> list[PendingAlert]:
        q = (
            sa.select(
                alerts.c.id,
                alerts.c.destination,
                alerts.c.attempts,
                alerts.c.delivered,
                hits.c.rule,
                hits.c.severity,
                hits.c.tags,
                hits.c.matched,
                hits.c.details,
                entries.c.title,
                entries.c.link,
                entries.c.summary,
                entries.c.published,
                entries.c.first_seen,
                feeds.c.name.label("feed"),
            )
            .join(hits, alerts.c.hit_id == hits.c.id)
            .join(entries, hits.c.entry_id == entries.c.id)
            .join(feeds, entries.c.feed_id == feeds.c.id)
            .where(alerts.c.state == "pending", alerts.c.next_attempt_at <= now)
            .order_by(alerts.c.id)
            .limit(limit)
        )
        with self.begin() as conn:
            rows = conn.execute(q).all()
        return [
            PendingAlert(
                id=r.id,
                destination=r.destination,
                attempts=r.attempts,
                delivered=tuple(r.delivered or ()),
                rule=r.rule,
                severity=r.severity,
                tags=tuple(r.tags),
                matched=tuple(r.matched),
                details=r.details or {},
                title=r.title,
                link=r.link,
                summary=r.summary,
                feed=r.feed,
                published=r.published,
                first_seen=r.first_seen,
            )
            for r in rows
        ]

    def mark_sent(self, alert_id: int, now: datetime, delivered: Sequence[str]) -> None:
        with self.begin() as conn:
            conn.execute(
                sa.update(alerts)
                .where(alerts.c.id == alert_id)
                .values(
                    state="sent",
                    sent_at=now,
                    attempts=alerts.c.attempts + 1,
                    delivered=list(delivered),
                    last_error=None,
                )
            )

    def mark_partial(self, alert_id: int, delivered: Sequence[str]) -> None:
        """Record the URLs that accepted the alert before the others are tried (so a retry skips them)."""
        with self.begin() as conn:
            conn.execute(sa.update(alerts).where(alerts.c.id == alert_id).values(delivered=list(delivered)))

    def mark_failed(
        self, alert_id: int, error: str, next_attempt_at: datetime, delivered: Sequence[str], dead: bool = False
    ) -> None:
        with self.begin() as conn:
            conn.execute(
                sa.update(alerts)
                .where(alerts.c.id == alert_id)
                .values(
                    state="dead" if dead else "pending",
                    attempts=alerts.c.attempts + 1,
                    last_error=error[:2000],
                    next_attempt_at=next_attempt_at,
                    delivered=list(delivered),
                )
            )

    # --- reports -----------------------------------------------------------------------------------------

    def recent_hits(
        self, *, rule: str | None = None, since: datetime | None = None, limit: int = 50
    ) -> list[dict[str, Any]]:
        q = (
            sa.select(
                hits.c.id,
                hits.c.rule,
                hits.c.rule_version,
                hits.c.tags,
                hits.c.severity,
                hits.c.matched,
                hits.c.details,
                hits.c.created_at,
                entries.c.title,
                entries.c.link,
                entries.c.published,
                entries.c.first_seen,
                feeds.c.name.label("feed"),
            )
            .join(entries, hits.c.entry_id == entries.c.id)
            .join(feeds, entries.c.feed_id == feeds.c.id)
            .order_by(hits.c.created_at.desc(), hits.c.id.desc())
            .limit(limit)
        )
        if rule:
            q = q.where(hits.c.rule == rule)
        if since is not None:
            q = q.where(hits.c.created_at >= since)
        with self.begin() as conn:
            rows = conn.execute(q).all()
        return [
            {
                "id": r.id,
                "rule": r.rule,
                "rule_version": r.rule_version,
                "tags": list(r.tags),
                "severity": r.severity,
                "title": r.title,
                "link": r.link,
                "feed": r.feed,
                "published": _iso(r.published or r.first_seen),
                "matched": list(r.matched),
                "details": r.details or {},
                "first_seen": _iso(r.first_seen),
            }
            for r in rows
        ]

    def feeds_overview(self) -> list[dict[str, Any]]:
        n_entries = sa.select(sa.func.count()).where(entries.c.feed_id == feeds.c.id).scalar_subquery()
        n_hits = (
            sa.select(sa.func.count())
            .select_from(hits.join(entries, hits.c.entry_id == entries.c.id))
            .where(entries.c.feed_id == feeds.c.id)
            .scalar_subquery()
        )
        q = sa.select(feeds, n_entries.label("n_entries"), n_hits.label("n_hits")).order_by(feeds.c.name)
        with self.begin() as conn:
            rows = conn.execute(q).all()
        return [
            {
                "name": r.name,
                "url": r.url,
                "title": r.title,
                "last_poll": _iso(r.last_poll_at),
                "last_success": _iso(r.last_success_at),
                "status": r.last_status or "never polled",
                "http_status": r.last_http_status,
                "consecutive_failures": r.consecutive_failures,
                "failing_since": _iso(r.failing_since),
                "last_error": r.last_error,
                "warning": r.last_warning,
                "entries": r.n_entries,
                "hits": r.n_hits,
            }
            for r in rows
        ]

    def counts(self) -> dict[str, int]:
        with self.begin() as conn:
            return {
                t.name: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
                for t in (feeds, entries, hits, alerts)
            }

    def alert_counts(self) -> dict[str, int]:
        with self.begin() as conn:
            rows = conn.execute(sa.select(alerts.c.state, sa.func.count()).group_by(alerts.c.state)).all()
        return {r[0]: r[1] for r in rows}


def _state(r: Any) -> FeedState:
    return FeedState(
        feed_id=r.id,
        name=r.name,
        url=r.url,
        etag=r.etag,
        last_modified=r.last_modified,
        consecutive_failures=r.consecutive_failures,
        last_success_at=r.last_success_at,
    )


def _iso(dt: datetime | None) -> str | None:
    return dt.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z") if dt else None


def backoff(attempts: int, base: float = 30.0, cap: float = 6 * 3600) -> timedelta:
    """Delay before the next delivery attempt: exponential, capped."""
    return timedelta(seconds=min(cap, base * (2 ** max(0, attempts - 1))))


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)
