"""Operations figures on a real SQLite file: what retention saves, and what a backup and a scrape cost.

    python bench/ops_bench.py [N_ENTRIES]

Builds a database of N entries (about 2 KB of text each, 2% of them hits), then prints, each beside a
baseline measured in the same run:
- bytes per entry row, full and emptied by retention (baseline: the full row);
- the prune's speed (rows emptied per second);
- `watcher db backup` (SQLite's backup API + integrity check) against a plain file copy of the same file;
- the read behind /metrics (one snapshot) against a bare `select count(*)`, and `watcher status`'s (the same
  plus the count of pruned entries, a full scan of the entries table).
"""

from __future__ import annotations

import random
import shutil
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from watcher.dbtools import backup
from watcher.models import Entry, Hit
from watcher.observe.reader import reader_engine
from watcher.observe.snapshot import read_snapshot
from watcher.retention import DAY, RetentionPolicy, prune
from watcher.store import PollWrite, Store

NOW = datetime(2026, 11, 27, tzinfo=UTC)
WORDS = ("compute", "azure", "nvidia", "anthropic", "gigawatt", "datacenter", "contract", "billion", "cloud", "chips")


def text(rng: random.Random, n_words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n_words))


def build(path: Path, n: int, *, emptied: bool = False) -> Store:
    store = Store.open(str(path))
    rng = random.Random(7)
    feed_id = store.sync_feeds([("wire", "https://w/feed")], NOW)["wire"].feed_id
    hit = Hit("deal", "v1", ("compute-contracts",), "notable", ("console",), ("billion",))
    for start in range(0, n, 500):
        batch = [
            Entry(
                key=f"https://w/item/{i}",
                title="" if emptied else text(rng, 12),
                link="" if emptied else f"https://w/item/{i}",
                summary="" if emptied else text(rng, 60),
                content="" if emptied else text(rng, 250),
                author="" if emptied else "Reporter",
                published=NOW - timedelta(days=200),
            )
            for i in range(start, min(n, start + 500))
        ]
        hits = {} if emptied else {e.key: [hit] for e in batch if rng.random() < 0.02}
        store.record_poll(
            PollWrite(feed_id, NOW - timedelta(days=200), "https://w/feed", 200, None, None, "W", batch, hits, None)
        )
    checkpoint(path)
    return store


def checkpoint(path: Path) -> None:
    """Move the WAL into the file, so its size tells the whole database."""
    con = sqlite3.connect(path)
    try:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        con.close()


def size(path: Path) -> int:
    return path.stat().st_size


def timed(fn):  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    out = fn()
    return time.perf_counter() - started, out


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        full = build(d / "full.db", n)
        tomb = build(d / "emptied.db", n, emptied=True)
        full_row = size(d / "full.db") / n
        tomb_row = size(d / "emptied.db") / n
        tomb.close()
        print(f"entries: {n}; database {size(d / 'full.db') / 1e6:.1f} MB")
        print(
            f"bytes per entry row: full {full_row:.0f}, emptied by retention {tomb_row:.0f} "
            f"(ratio {tomb_row / full_row:.3f})"
        )

        took, report = timed(lambda: prune(full, RetentionPolicy(entries=90 * DAY, keys=None), NOW))
        print(
            f"prune: emptied {report.entries_emptied} rows in {took:.2f}s ({report.entries_emptied / took:,.0f} rows/s)"
        )

        checkpoint(d / "full.db")
        copy_time, _ = timed(lambda: shutil.copyfile(d / "full.db", d / "plain-copy.db"))
        backup_time, r = timed(lambda: backup(full, d / "backup.db"))
        print(
            f"backup of {size(d / 'full.db') / 1e6:.1f} MB: {backup_time:.3f}s (integrity {r.integrity}); "
            f"plain file copy {copy_time:.3f}s (ratio {backup_time / copy_time:.1f})"
        )

        reader = reader_engine(full.engine.url)
        with reader.connect() as conn:
            base, _ = timed(lambda: conn.exec_driver_sql("select count(*) from entries").scalar())
        with reader.connect() as conn:
            snap_time, snap = timed(lambda: read_snapshot(conn, NOW))
        with reader.connect() as conn:
            status_time, _ = timed(lambda: read_snapshot(conn, NOW, count_pruned=True))
        reader.dispose()
        print(
            f"snapshot for /metrics: {snap_time * 1000:.1f} ms ({snap.entries} entries, {snap.hits} hits); "
            f"select count(*) {base * 1000:.1f} ms (ratio {snap_time / base:.1f}); with the pruned count "
            f"(watcher status) {status_time * 1000:.1f} ms"
        )
        full.close()


if __name__ == "__main__":
    main()
