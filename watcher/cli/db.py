"""``watcher db ...``: look after the database file (stats, backup, upgrade, prune)."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from .. import migrations
from ..dbtools import backup, stats
from ..observe.reader import reader_engine
from ..retention import prune
from ..store import database_url
from .common import Subparsers, load, open_store, table


def register(sub: Subparsers) -> None:
    sp = sub.add_parser(
        "db",
        help="the database: stats, backup, upgrade, prune",
        description="Look after the database: sizes and counts, an online backup, retention.",
    )
    dbsub = sp.add_subparsers(dest="db_command", metavar="DB_COMMAND", required=True)

    p = dbsub.add_parser(
        "stats",
        help="file and WAL size, rows per table, oldest/newest entry, counts per feed",
        description="File and WAL size, rows per table, oldest and newest entry, and counts per feed.",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=cmd_stats)

    p = dbsub.add_parser(
        "backup",
        help="an online, consistent copy of the database (safe while the daemon runs)",
        description="Copy the SQLite database with SQLite's backup API while the daemon may be writing: the copy "
        "is one consistent snapshot, checked with PRAGMA integrity_check. PATH is a new file, or a folder to "
        "put watcher-YYYYMMDD-HHMMSS.db in. An existing file is never overwritten.",
    )
    p.add_argument("path", metavar="PATH", help="the new file, or an existing folder")
    p.set_defaults(func=cmd_backup)

    p = dbsub.add_parser(
        "upgrade",
        help="bring the database schema up to this watcher's (also done at every start)",
        description="Run the schema migrations now. Every command does this when it opens the database; "
        "this one reports the revisions. A SQLite file is copied to FILE.before-REVISION.bak first.",
    )
    p.set_defaults(func=cmd_upgrade)

    p = dbsub.add_parser(
        "prune",
        help="apply retention now (the daemon does it daily)",
        description="Apply the retention: block of feeds.yaml now: empty old entries that matched nothing "
        "(keeping their dedupe key), delete expired hits and keys.",
    )
    p.add_argument("--dry-run", action="store_true", help="count what would be pruned, change nothing")
    p.set_defaults(func=cmd_prune)


def human_bytes(n: int | None) -> str:
    if n is None:
        return "-"
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")


def _when(dt: datetime | None) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%d %H:%M") if dt else "-"


def _iso(dt: datetime | None) -> str | None:
    return dt.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z") if dt else None


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return _iso(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def cmd_stats(args: argparse.Namespace) -> int:
    store = open_store(args)
    reader = reader_engine(store.engine.url)
    try:
        s = stats(store, reader)
    finally:
        reader.dispose()
        store.close()
    if args.json:
        print(json.dumps(_jsonable(asdict(s)), ensure_ascii=False, indent=2))
        return 0
    lines = [f"database  {s.path or s.database}"]
    if s.path:
        pages = f"{s.pages} pages of {s.page_size} bytes, {s.free_pages} free (reused before the file grows)"
        lines.append(f"size      {human_bytes(s.file_bytes)} + WAL {human_bytes(s.wal_bytes)}; {pages}")
    lines.append("tables    " + ", ".join(f"{name} {n}" for name, n in s.tables.items()))
    n_entries = s.tables.get("entries", 0)
    lines.append(
        f"entries   {n_entries} ({s.entries_pruned} pruned to their dedupe key); first seen "
        f"{_when(s.oldest_entry)} .. {_when(s.newest_entry)} UTC"
    )
    print("\n".join(lines))
    if s.feeds:
        print()
        rows = [[f.name, str(f.entries), str(f.pruned), str(f.hits), _when(f.oldest), _when(f.newest)] for f in s.feeds]
        print(table(rows, ["feed", "entries", "pruned", "hits", "oldest (UTC)", "newest (UTC)"]))
    return 0


def cmd_backup(args: argparse.Namespace) -> int:
    store = open_store(args)
    try:
        r = backup(store, args.path)
    finally:
        store.close()
    counts = ", ".join(f"{k} {v}" for k, v in r.tables.items())
    print(f"backup written to {r.path}: {human_bytes(r.bytes)} in {r.seconds:.2f}s, integrity {r.integrity}; {counts}")
    return 0


def cmd_upgrade(args: argparse.Namespace) -> int:
    url = database_url(args.db)
    before = migrations.current(url)
    store = open_store(args)  # opening migrates, with the copy beforehand
    store.close()
    after = migrations.current(url)
    if before == after:
        print(f"database schema is current ({after})")
    else:
        print(f"database schema upgraded from {before or 'empty'} to {after}")
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    policy = load(args).feeds.retention
    store = open_store(args)
    try:
        report = prune(store, policy, datetime.now(UTC), dry_run=args.dry_run)
    finally:
        store.close()
    print(f"retention ({policy.describe()}): {report.describe()}")
    return 0
