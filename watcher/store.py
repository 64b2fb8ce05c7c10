"""SQLite (or any SQLAlchemy 2 database) storage: the queries the pipeline and CLI need (tables: schema.py).

Writes happen in ``BEGIN IMMEDIATE`` transactions (a deferred transaction that reads then writes fails at once
on a locked SQLite file, whatever the busy timeout: measured), the file is in WAL mode with a busy timeout so a
CLI reading while the daemon writes waits instead of failing, and foreign keys are on.

The schema is migrated with Alembic (watcher/migrations) when the store opens.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from .errors import StoreError
from .models import Entry, FeedHealth, FeedState, Hit
from .policy import Decision
from .schema import UTCDateTime as UTCDateTime  # re-exported: the tables used to live here
from .schema import alerts as alerts
from .schema import entries as entries
from .schema import feeds as feeds
from .schema import hits as hits
from .schema import meta as meta
from .schema import metadata as metadata
from .story import story_key

log = logging.getLogger("watcher.store")


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
    attempts: int  # failed delivery attempts so far
    delivered: tuple[str, ...]  # target ids of the URLs that accepted it
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
    route: str | None = None  # None (undecided), "instant" or "digest"
    hold_reason: str | None = None  # why a digest-routed alert was held
    created_at: datetime | None = None
    age_from: datetime | None = None  # dead-letter age counts from here
    targets: Mapping[str, Any] = field(default_factory=dict)  # per-URL report (see alerts.targets)


@dataclass(frozen=True)
class NotModifiedWrite:
    """What a poll answered by 304 Not Modified stores: the feed's state only."""

    feed_id: int
    now: datetime
    http_status: int
    decision: Decision | None = None


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
    decision: Decision | None = None  # next poll, redirect streak, move (policy.py); None: leave as is
    ttl: float | None = None  # the feed's RSS <ttl> in seconds, kept for the polls answered by a 304


@dataclass(frozen=True)
class StoredEntry:
    """An entry as stored, with the rules that matched it when it arrived (for explain and backtest)."""

    id: int  # entries.id, as `watcher hits --json` shows it (entry_id)
    feed: str  # the feed's name
    entry: Entry
    first_seen: datetime
    hits: Mapping[str, str]  # rule name -> rule_version of the stored hit


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
        """Create or upgrade the schema through the migrations (watcher/migrations)."""
        from . import migrations

        url = self.engine.url
        if url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:"):
            metadata.create_all(self.engine)  # a private in-memory database: nothing to migrate
            return
        known = migrations.head()
        rev = migrations.current(url.render_as_string(hide_password=False))
        if rev not in (None, "legacy") and not migrations.is_known(rev):
            raise StoreError(
                f"the database is at schema {rev}, newer than this watcher knows ({known}): "
                "upgrade watcher, or restore a backup made by this version"
            )
        if rev != known:
            if rev is not None and url.get_backend_name() == "sqlite" and url.database:
                saved = _copy_before_upgrade(url.database, rev)
                log.warning("upgrading the database schema from %s to %s; a copy is kept at %s", rev, known, saved)
            before, after = migrations.upgrade(url.render_as_string(hide_password=False))
            log.info("database schema upgraded from %s to %s", before or "empty", after)

    def close(self) -> None:
        self.engine.dispose()

    @property
    def sqlite_file(self) -> str | None:
        """The database file when it is a SQLite file (for the delivery lock beside it), else None."""
        if self.engine.dialect.name != "sqlite":
            return None
        db = self.engine.url.database
        return db if db and db != ":memory:" else None

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
        """Make sure every (name, url) has a row.

        ``url`` is the URL of feeds.yaml: a permanent move (``moved_to``) does not change it, so syncing never
        undoes a move. When the user edits the URL, the feed starts afresh at it: validators, move, redirect
        streak, hold and a 410's disabling are reset (the failure count stays until a poll succeeds).
        """
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
                        sa.update(feeds)
                        .where(feeds.c.id == row.id)
                        .values(
                            url=url,
                            etag=None,
                            last_modified=None,
                            moved_to=None,
                            moved_at=None,
                            redirect_target=None,
                            redirect_count=0,
                            gone_at=None,
                            next_poll_at=None,
                            next_poll_reason=None,
                            ttl=None,
                        )
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

    def record_not_modified(
        self, feed_id: int, now: datetime, http_status: int, decision: Decision | None = None
    ) -> None:
        self.record_not_modified_many([NotModifiedWrite(feed_id, now, http_status, decision)])

    def record_not_modified_many(self, writes: Sequence[NotModifiedWrite]) -> None:
        """The state of feeds that answered 304, all in one transaction (the pipeline gathers the 304s of a few
        moments and writes them together: one commit, not one per feed).

        On SQLite (3.33 and later) the rows go in as one JSON parameter of a single ``UPDATE ... FROM
        json_each(...)``: one statement, where ``executemany`` steps once per row, and each step hands the GIL
        to the event loop's thread and waits to get it back (bench/poll.py: 0.3 ms for 8 rows alone, 5 ms
        while the loop polls).
        """
        if not writes:
            return
        if self.engine.dialect.name == "sqlite" and self._json_update:
            self._not_modified_json(writes)
            return
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}  # by the columns set, one executemany each
        for w in writes:
            values = _not_modified_values(w)
            groups.setdefault(tuple(values), []).append(
                {"feed_id_": w.feed_id, **{k + "_": v for k, v in values.items()}}
            )
        with self.begin() as conn:
            for columns, params in groups.items():
                stmt = (
                    sa.update(feeds)
                    .where(feeds.c.id == sa.bindparam("feed_id_"))
                    .values({c: sa.bindparam(c + "_", type_=feeds.c[c].type) for c in columns})
                )
                conn.execute(stmt, params)

    _json_update = sqlite3.sqlite_version_info >= (3, 33, 0)  # UPDATE ... FROM; tests turn it off to check both

    def _not_modified_json(self, writes: Sequence[NotModifiedWrite]) -> None:
        dialect = self.engine.dialect
        when = feeds.c.last_poll_at.type.dialect_impl(dialect).bind_processor(dialect)  # datetimes as stored
        assert when is not None

        def stored(value: datetime | None) -> Any:
            return None if value is None else when(value)

        rows = []
        for w in writes:
            d = w.decision
            now = stored(w.now)
            row = [w.feed_id, now, w.http_status, None, None, None, None, None, None, None]
            if d is not None:
                row[3:] = [1, stored(d.next_poll_at), d.next_poll_reason, d.redirect_target, d.redirect_count]
                row[8:] = [d.move_to, now if d.gone else None]
            rows.append(row)
        # each column as _not_modified_values() sets it; a feed without a decision keeps its politeness columns
        sql = sa.text(
            """
            UPDATE feeds SET
                last_poll_at = v.now, last_success_at = v.now, last_status = 'not-modified',
                last_http_status = v.status, last_error = NULL, consecutive_failures = 0, failing_since = NULL,
                gone_at = v.gone_at,
                next_poll_at = CASE WHEN v.decided THEN v.next_poll_at ELSE feeds.next_poll_at END,
                next_poll_reason = CASE WHEN v.decided THEN v.next_poll_reason ELSE feeds.next_poll_reason END,
                redirect_target = CASE WHEN v.decided THEN v.redirect_target ELSE feeds.redirect_target END,
                redirect_count = CASE WHEN v.decided THEN v.redirect_count ELSE feeds.redirect_count END,
                moved_to = COALESCE(v.move_to, feeds.moved_to),
                moved_at = CASE WHEN v.move_to IS NULL THEN feeds.moved_at ELSE v.now END
            FROM (
                SELECT json_extract(value, '$[0]') AS id, json_extract(value, '$[1]') AS now,
                    json_extract(value, '$[2]') AS status, json_extract(value, '$[3]') AS decided,
                    json_extract(value, '$[4]') AS next_poll_at, json_extract(value, '$[5]') AS next_poll_reason,
                    json_extract(value, '$[6]') AS redirect_target, json_extract(value, '$[7]') AS redirect_count,
                    json_extract(value, '$[8]') AS move_to, json_extract(value, '$[9]') AS gone_at
                FROM json_each(:rows)
            ) AS v
            WHERE feeds.id = v.id
            """
        )
        with self.begin() as conn:
            conn.execute(sql, {"rows": json.dumps(rows)})

    def record_failure(
        self, feed_id: int, now: datetime, http_status: int | None, error: str, decision: Decision | None = None
    ) -> None:
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
                    **_decision_values(decision, now),
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
                entry_hits = w.hits.get(key)
                if not entry_hits:
                    continue
                entry = by_key[key]
                story = story_key(entry.title, entry.link)
                for hit in entry_hits:
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
                            story=story,
                            created_at=w.now,
                        ),
                    ).scalar()
                    if hit_id is None:
                        continue
                    n_hits += 1
                    if w.alert_cutoff is not None and (entry.published is None or entry.published < w.alert_cutoff):
                        continue  # backlog of a new feed: stored, not alerted
                    if (
                        hit.cooldown
                        and story
                        and self._alerted_within(conn, hit.rule, story, hit_id, w.now, hit.cooldown)
                    ):
                        continue  # the same story already alerted for this rule: stored, not alerted again
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
                                age_from=w.now,
                            ),
                        )
                        n_alerts += 1
            conn.execute(
                sa.update(feeds)
                .where(feeds.c.id == w.feed_id)
                .values(
                    # w.url (the final URL after redirects) is not stored: a feed moves only through a
                    # decision (301/308 on several polls); a temporary redirect must not move it
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
                    gone_at=None,
                    ttl=w.ttl,
                    **_decision_values(w.decision, w.now),
                    **_entry_stat_values(len(inserted), w.now),
                )
            )
        return PollCounts(len(inserted), n_hits, n_alerts)

    def set_health_alert(self, feed_id: int, condition: str | None, now: datetime) -> None:
        """Remember the condition last alerted for a feed (None: ok), so the next check alerts only on a change."""
        with self.begin() as conn:
            conn.execute(
                sa.update(feeds).where(feeds.c.id == feed_id).values(health_alert=condition, health_alert_at=now)
            )

    @staticmethod
    def _alerted_within(conn: Connection, rule: str, story: str, hit_id: int, now: datetime, seconds: float) -> bool:
        """Whether another hit of `rule` on `story`, recorded within `seconds` before `now`, created an alert.

        Only alerted hits count, so a story first seen in a new feed's backlog (stored, not alerted) still alerts
        when it comes again, and a story repeated every few hours alerts again once a full period has passed.
        """
        q = (
            sa.select(hits.c.id)
            .where(
                hits.c.rule == rule,
                hits.c.story == story,
                hits.c.id != hit_id,
                hits.c.created_at >= now - timedelta(seconds=seconds),
                sa.exists().where(alerts.c.hit_id == hits.c.id),
            )
            .limit(1)
        )
        return conn.execute(q).first() is not None

    # --- reports -----------------------------------------------------------------------------------------

    def recent_hits(
        self, *, rule: str | None = None, since: datetime | None = None, limit: int | None = 50
    ) -> list[dict[str, Any]]:
        q = (
            sa.select(
                hits.c.id,
                hits.c.entry_id,
                hits.c.rule,
                hits.c.rule_version,
                hits.c.tags,
                hits.c.severity,
                hits.c.matched,
                hits.c.details,
                hits.c.story,
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
                "entry_id": r.entry_id,
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
                "story": r.story,
                "first_seen": _iso(r.first_seen),
            }
            for r in rows
        ]

    def feed_health(self) -> list[FeedHealth]:
        """Every feed's health facts (for the health checks and `watcher feeds`)."""
        with self.begin() as conn:
            rows = conn.execute(sa.select(feeds).order_by(feeds.c.name)).all()
        out = []
        for r in rows:
            out.append(
                FeedHealth(
                    feed_id=r.id,
                    name=r.name,
                    url=r.url,
                    moved_to=r.moved_to,
                    last_success_at=r.last_success_at,
                    last_http_status=r.last_http_status,
                    last_error=r.last_error,
                    consecutive_failures=r.consecutive_failures,
                    failing_since=r.failing_since,
                    gone_at=r.gone_at,
                    next_poll_at=r.next_poll_at,
                    next_poll_reason=r.next_poll_reason,
                    first_entry_at=r.first_entry_at,
                    last_entry_at=r.last_entry_at,
                    new_entries=r.new_entries,
                    health_alert=r.health_alert,
                )
            )
        return out

    # --- stored entries (rules explain / backtest) ---------------------------------------------------------

    def count_entries(self, since: datetime | None = None) -> int:
        q = sa.select(sa.func.count()).select_from(entries)
        if since is not None:
            q = q.where(entries.c.first_seen >= since)
        with self.begin() as conn:
            return int(conn.execute(q).scalar_one())

    def stored_entry(self, entry_id: int) -> StoredEntry | None:
        batch = self._stored(entries.c.id == entry_id)
        return batch[0] if batch else None

    def stored_entries(self, since: datetime | None = None, batch: int = 500) -> Iterator[list[StoredEntry]]:
        """Every entry (first seen at/after `since`), oldest first, in batches: one short read each, so a long
        backtest never holds the database while it matches."""
        last = 0
        while True:
            cond = entries.c.id > last
            if since is not None:
                cond = sa.and_(cond, entries.c.first_seen >= since)
            rows = self._stored(cond, limit=batch)
            if not rows:
                return
            yield rows
            last = rows[-1].id

    def _stored(self, where: Any, limit: int | None = None) -> list[StoredEntry]:
        q = sa.select(entries, feeds.c.name.label("feed")).join(feeds, entries.c.feed_id == feeds.c.id).where(where)
        q = q.order_by(entries.c.id)
        if limit is not None:
            q = q.limit(limit)
        with self.begin() as conn:
            rows = conn.execute(q).all()
            ids = [r.id for r in rows]
            found: dict[int, dict[str, str]] = {i: {} for i in ids}
            if ids:
                hq = sa.select(hits.c.entry_id, hits.c.rule, hits.c.rule_version).where(hits.c.entry_id.in_(ids))
                for h in conn.execute(hq):
                    found[h.entry_id][h.rule] = h.rule_version
        return [
            StoredEntry(
                id=r.id,
                feed=r.feed,
                entry=Entry(
                    key=r.key,
                    title=r.title,
                    link=r.link,
                    summary=r.summary,
                    content=r.content,
                    author=r.author,
                    categories=tuple(r.categories or ()),
                    published=r.published,
                ),
                first_seen=r.first_seen,
                hits=found[r.id],
            )
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
        out = []
        for r in rows:
            out.append(
                {
                    "name": r.name,
                    "url": r.url,
                    "moved_to": r.moved_to,
                    "moved_at": _iso(r.moved_at),
                    "title": r.title,
                    "last_poll": _iso(r.last_poll_at),
                    "last_success": _iso(r.last_success_at),
                    "status": r.last_status or "never polled",
                    "http_status": r.last_http_status,
                    "consecutive_failures": r.consecutive_failures,
                    "failing_since": _iso(r.failing_since),
                    "disabled_at": _iso(r.gone_at),
                    "next_poll": _iso(r.next_poll_at),
                    "next_poll_reason": r.next_poll_reason,
                    "redirect_target": r.redirect_target,
                    "redirect_count": r.redirect_count,
                    "last_error": r.last_error,
                    "warning": r.last_warning,
                    "entries": r.n_entries,
                    "hits": r.n_hits,
                    "last_entry": _iso(r.last_entry_at),
                    "mean_entry_interval": mean_interval(r.first_entry_at, r.last_entry_at, r.new_entries),
                    "health_alert": r.health_alert,
                }
            )
        return out

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


def _copy_before_upgrade(path: str, rev: str) -> str:
    """A consistent copy of a SQLite database before its schema changes (SQLite's backup API), never overwritten."""
    import sqlite3

    target = Path(f"{path}.before-{rev}.bak")
    n = 1
    while target.exists():
        target = Path(f"{path}.before-{rev}.{n}.bak")
        n += 1
    src = sqlite3.connect(path)
    dst = sqlite3.connect(target)
    try:
        with dst:
            src.backup(dst)
    finally:
        dst.close()
        src.close()
    return str(target)


def _state(r: Any) -> FeedState:
    return FeedState(
        feed_id=r.id,
        name=r.name,
        url=r.moved_to or r.url,
        etag=r.etag,
        last_modified=r.last_modified,
        consecutive_failures=r.consecutive_failures,
        last_success_at=r.last_success_at,
        configured_url=r.url,
        last_poll_at=r.last_poll_at,
        failing_since=r.failing_since,
        next_poll_at=r.next_poll_at,
        next_poll_reason=r.next_poll_reason,
        redirect_target=r.redirect_target,
        redirect_count=r.redirect_count,
        gone_at=r.gone_at,
        ttl=r.ttl,
    )


def _not_modified_values(w: NotModifiedWrite) -> dict[str, Any]:
    """The feeds columns a 304 sets."""
    return {
        "last_poll_at": w.now,
        "last_success_at": w.now,
        "last_status": "not-modified",
        "last_http_status": w.http_status,
        "last_error": None,
        "consecutive_failures": 0,
        "failing_since": None,
        "gone_at": None,
        **_decision_values(w.decision, w.now),
    }


def _entry_stat_values(stored: int, now: datetime) -> dict[str, Any]:
    """The feeds columns a poll that stored `stored` new entries updates: the first ones (the backlog of the first
    poll that found any) set first_entry_at; later ones count as new entries. SET clauses read the old row."""
    if not stored:
        return {}
    return {
        "first_entry_at": sa.func.coalesce(feeds.c.first_entry_at, sa.bindparam(None, now, type_=UTCDateTime())),
        "last_entry_at": now,
        "new_entries": sa.case((feeds.c.first_entry_at.is_(None), 0), else_=feeds.c.new_entries + stored),
    }


def _decision_values(d: Decision | None, now: datetime) -> dict[str, Any]:
    """The feeds columns a policy decision sets."""
    if d is None:
        return {}
    values: dict[str, Any] = {
        "next_poll_at": d.next_poll_at,
        "next_poll_reason": d.next_poll_reason,
        "redirect_target": d.redirect_target,
        "redirect_count": d.redirect_count,
    }
    if d.move_to is not None:
        values.update(moved_to=d.move_to, moved_at=now)
    if d.gone:
        values["gone_at"] = now
    return values


def mean_interval(first: datetime | None, last: datetime | None, new_entries: int) -> float | None:
    """Mean seconds between new entries since the first poll: (newest - first poll) / entries after it.

    The first poll's backlog all shares one first_seen, so it does not count (it would make any feed look busy).
    """
    if first is None or last is None or new_entries < 1:
        return None
    return (last - first).total_seconds() / new_entries


def _iso(dt: datetime | None) -> str | None:
    return dt.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z") if dt else None
