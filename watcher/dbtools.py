"""Looking after the database file: ``watcher db stats`` (sizes and counts) and ``watcher db backup`` (an online,
consistent copy).

The backup uses SQLite's online backup API (:meth:`sqlite3.Connection.backup`) in a single step: the copy is
read in one read transaction, so it is one consistent snapshot of the database, and in WAL mode the daemon
keeps writing meanwhile (a reader never blocks the writer). The copy is written beside its destination under
a temporary name, switched out of WAL mode (one self-contained file), checked with ``PRAGMA integrity_check``
and only then renamed into place: a failed backup never leaves a file that looks like a good one.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import sqlalchemy as sa

from .errors import StoreError
from .observe.snapshot import as_utc
from .retention import EMPTIED, tombstones
from .store import Store, entries, feeds, hits


@dataclass(frozen=True)
class FeedCounts:
    name: str
    entries: int  # entry rows, including pruned ones
    pruned: int  # of which only the dedupe key is left
    hits: int
    oldest: datetime | None  # first_seen of its oldest entry
    newest: datetime | None


@dataclass(frozen=True)
class DbStats:
    """Sizes and counts of one database."""

    database: str  # the URL, password hidden
    path: str | None  # the SQLite file, None for a server database
    file_bytes: int | None
    wal_bytes: int | None  # the write-ahead log beside it (0 after a checkpoint)
    page_size: int | None
    pages: int | None
    free_pages: int | None  # pages freed by deletions, reused before the file grows
    tables: dict[str, int]  # every table -> rows
    entries_pruned: int
    oldest_entry: datetime | None  # first_seen
    newest_entry: datetime | None
    feeds: tuple[FeedCounts, ...]


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def sqlite_path(store: Store) -> Path | None:
    url = store.engine.url
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return Path(url.database).expanduser().resolve()


def stats(store: Store, reader: sa.Engine) -> DbStats:
    """Everything `watcher db stats` prints; `reader`: a read-only engine on the same database."""
    path = sqlite_path(store)
    with reader.connect() as conn:
        names = sorted(sa.inspect(conn).get_table_names())
        tables = {n: int(conn.execute(sa.select(sa.func.count()).select_from(sa.table(n))).scalar_one()) for n in names}
        seen = entries.c.first_seen
        oldest, newest = conn.execute(sa.select(sa.func.min(seen), sa.func.max(seen))).one()
        pruned = tombstones(conn)
        page_size = pages = free = None
        if conn.dialect.name == "sqlite":
            page_size = int(conn.exec_driver_sql("PRAGMA page_size").scalar_one())
            pages = int(conn.exec_driver_sql("PRAGMA page_count").scalar_one())
            free = int(conn.exec_driver_sql("PRAGMA freelist_count").scalar_one())
        per_entry = (
            sa.select(
                entries.c.feed_id,
                sa.func.count().label("n"),
                sa.func.sum(sa.case((EMPTIED, 1), else_=0)).label("pruned"),
                sa.func.min(entries.c.first_seen).label("oldest"),
                sa.func.max(entries.c.first_seen).label("newest"),
            )
            .group_by(entries.c.feed_id)
            .subquery()
        )
        per_hit = (
            sa.select(entries.c.feed_id, sa.func.count().label("n"))
            .select_from(hits.join(entries, hits.c.entry_id == entries.c.id))
            .group_by(entries.c.feed_id)
            .subquery()
        )
        rows = conn.execute(
            sa.select(
                feeds.c.name,
                per_entry.c.n,
                per_entry.c.pruned,
                per_entry.c.oldest,
                per_entry.c.newest,
                per_hit.c.n.label("hits"),
            )
            .select_from(
                feeds.outerjoin(per_entry, per_entry.c.feed_id == feeds.c.id).outerjoin(
                    per_hit, per_hit.c.feed_id == feeds.c.id
                )
            )
            .order_by(feeds.c.name)
        ).all()
    return DbStats(
        database=store.engine.url.render_as_string(hide_password=True),
        path=str(path) if path else None,
        file_bytes=_size(path) if path else None,
        wal_bytes=_size(Path(str(path) + "-wal")) if path else None,
        page_size=page_size,
        pages=pages,
        free_pages=free,
        tables=tables,
        entries_pruned=pruned,
        oldest_entry=as_utc(oldest),
        newest_entry=as_utc(newest),
        feeds=tuple(
            FeedCounts(
                name=r.name,
                entries=int(r.n or 0),
                pruned=int(r.pruned or 0),
                hits=int(r.hits or 0),
                oldest=as_utc(r.oldest),
                newest=as_utc(r.newest),
            )
            for r in rows
        ),
    )


@dataclass(frozen=True)
class BackupReport:
    path: str
    bytes: int
    seconds: float
    integrity: str  # "ok", or SQLite's first complaint
    tables: dict[str, int]  # rows per table in the copy


def default_backup_name(now: datetime) -> str:
    return f"watcher-{now.astimezone(UTC):%Y%m%d-%H%M%S}.db"


def backup(store: Store, dest: str | os.PathLike[str], *, now: datetime | None = None) -> BackupReport:
    """Copy the live SQLite database to `dest` (a new file, or a folder to put a dated file in)."""
    src_path = sqlite_path(store)
    if src_path is None:
        raise StoreError(
            f"watcher db backup copies SQLite files; {store.engine.url.get_backend_name()} databases have their "
            "own tools (pg_dump for PostgreSQL)"
        )
    target = Path(dest).expanduser()
    if target.is_dir():
        target = target / default_backup_name(now or datetime.now(UTC))
    if target.exists():
        raise StoreError(f"backup target {target} already exists: choose a new name, or delete it first")
    if not target.parent.is_dir():
        raise StoreError(f"backup target folder {target.parent} does not exist")
    if target.resolve() == src_path:
        raise StoreError("the backup target is the database itself")
    partial = target.with_name(target.name + ".partial")
    started = time.monotonic()
    try:
        # mode=rw: never create an empty database when the path is wrong
        src = sqlite3.connect(f"file:{quote(str(src_path))}?mode=rw", uri=True, timeout=10.0)
        try:
            dst = sqlite3.connect(partial)
            try:
                src.backup(dst)  # pages=-1: the whole database in one step, one consistent read snapshot
                dst.execute("PRAGMA journal_mode=DELETE")  # a single self-contained file, no -wal beside it
                integrity = dst.execute("PRAGMA integrity_check").fetchone()[0]
                names = [r[0] for r in dst.execute("select name from sqlite_master where type='table' order by name")]
                counts = {n: dst.execute(f'select count(*) from "{n}"').fetchone()[0] for n in names}
            finally:
                dst.close()
        finally:
            src.close()
        if integrity != "ok":
            raise StoreError(f"the backup copy failed its integrity check: {integrity}")
        with open(partial, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(partial, target)
    except sqlite3.Error as e:
        raise StoreError(f"backup failed: {e}") from e
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
    return BackupReport(
        path=str(target),
        bytes=_size(target),
        seconds=time.monotonic() - started,
        integrity=integrity,
        tables=counts,
    )
