"""`watcher db backup` while a poll is writing, and `watcher db stats`, on real SQLite files."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from servers import FeedServer, make_rss

from watcher.cli import main
from watcher.config import load_feeds, load_rules
from watcher.dbtools import backup
from watcher.errors import StoreError
from watcher.fetch import HttpFetcher
from watcher.pipeline import Pipeline
from watcher.retention import DAY, RetentionPolicy, prune
from watcher.store import Store

PER_POLL = 100  # every poll stores this many new entries, each a hit with one alert, in one transaction
NOW = datetime.now(UTC).replace(microsecond=0)


def feed_body(generation: int) -> str:
    items = [
        {"guid": f"g{generation}-{i}", "title": f"deal {generation}-{i}: $1 billion of compute", "published": NOW}
        for i in range(PER_POLL)
    ]
    return make_rss(items)


class Writer(threading.Thread):
    """Polls through the real pipeline in a loop, each time against a feed of PER_POLL new items."""

    def __init__(self, tmp: Path, server: FeedServer, store: Store) -> None:
        super().__init__(daemon=True)
        self.server, self.store = server, store
        url = server.add("/rss.xml", feed_body(0))
        (tmp / "feeds.yaml").write_text(f"feeds:\n  - name: wire\n    url: {url}\n")
        (tmp / "rules.yaml").write_text("rules:\n  - name: deal\n    any: [billion]\n")
        self.feed = load_feeds(tmp / "feeds.yaml").feeds[0]
        self.rules = load_rules(tmp / "rules.yaml", {}).rules
        self.polls = 0
        self.first = threading.Event()
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            asyncio.run(self._loop())
        except BaseException as e:
            self.error = e
            self.first.set()

    async def _loop(self) -> None:
        async with HttpFetcher(user_agent="test") as fetcher:
            pipeline = Pipeline(self.store, fetcher, lambda: self.rules)
            try:
                while True:
                    report = await pipeline.poll_feed(self.feed)
                    assert report.status == "ok" and report.new_entries == PER_POLL, report
                    self.polls += 1
                    self.server.add("/rss.xml", feed_body(self.polls))
                    self.first.set()
                    if self.stop.is_set():
                        break
            finally:
                pipeline.close()


def check_copy(path: Path, *, copy: bool = True) -> dict[str, int]:
    con = sqlite3.connect(path)
    try:
        assert con.execute("pragma integrity_check").fetchone()[0] == "ok"
        assert con.execute("pragma foreign_key_check").fetchall() == []
        if copy:
            assert con.execute("pragma journal_mode").fetchone()[0] == "delete"  # one self-contained file
        counts = {t: con.execute(f"select count(*) from {t}").fetchone()[0] for t in ("entries", "hits", "alerts")}
    finally:
        con.close()
    assert not copy or not Path(str(path) + "-wal").exists()
    return counts


def test_backup_while_a_poll_is_writing(tmp_path: Path, feed_server: FeedServer) -> None:
    store = Store.open(str(tmp_path / "w.db"))
    writer = Writer(tmp_path, feed_server, store)
    writer.start()
    copies: list[dict[str, int]] = []
    try:
        assert writer.first.wait(60), "the writer never polled"
        deadline = time.monotonic() + 60
        # back up in a loop while the writer commits poll after poll: copies start before, during and after
        # its write transactions
        while writer.polls < 6 and writer.is_alive() and time.monotonic() < deadline:
            target = tmp_path / f"copy-{len(copies)}.db"
            report = backup(store, target)
            counts = check_copy(target)
            assert report.integrity == "ok" and report.tables["entries"] == counts["entries"]
            copies.append(counts)
            target.unlink()
    finally:
        writer.stop.set()
        writer.join(60)
        store.close()
    assert writer.error is None, writer.error
    for counts in copies:
        # every poll is one transaction of PER_POLL entries, each with its hit and alert: a consistent copy holds
        # whole polls only, and the three counts agree
        assert counts["entries"] % PER_POLL == 0 and counts["entries"] > 0, counts
        assert counts["hits"] == counts["entries"] == counts["alerts"], counts
    assert len({c["entries"] for c in copies}) >= 4, "the backups did not overlap the writes"
    final = check_copy(tmp_path / "w.db", copy=False)
    assert final["entries"] >= copies[-1]["entries"]


def test_backup_refuses_to_overwrite_and_names_a_file_in_a_folder(tmp_path: Path) -> None:
    store = Store.open(str(tmp_path / "w.db"))
    try:
        (tmp_path / "taken.db").write_bytes(b"precious")
        with pytest.raises(StoreError, match="already exists"):
            backup(store, tmp_path / "taken.db")
        assert (tmp_path / "taken.db").read_bytes() == b"precious"
        with pytest.raises(StoreError, match="does not exist"):
            backup(store, tmp_path / "missing" / "x.db")
        folder = tmp_path / "backups"
        folder.mkdir()
        report = backup(store, folder, now=datetime(2026, 11, 27, 3, 4, 5, tzinfo=UTC))
        assert report.path == str(folder / "watcher-20261127-030405.db")
        assert list(folder.iterdir()) == [folder / "watcher-20261127-030405.db"]  # no .partial left behind
    finally:
        store.close()


def test_db_stats_json(tmp_path: Path, feed_server: FeedServer, capsys: pytest.CaptureFixture[str]) -> None:
    store = Store.open(str(tmp_path / "w.db"))
    writer = Writer(tmp_path, feed_server, store)
    writer.stop.set()
    writer.run()  # stop is already set: one poll only (run() in this thread)
    assert writer.error is None and writer.polls == 1
    with store.begin() as conn:  # make 30 of the entries unmatched and old, then prune them to their keys
        conn.exec_driver_sql("delete from hits where id in (select id from hits order by id limit 30)")
    prune(store, RetentionPolicy(entries=DAY, keys=400 * DAY), datetime.now(UTC) + timedelta(days=2))
    store.close()

    assert main(["--db", str(tmp_path / "w.db"), "db", "stats", "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["path"] == str((tmp_path / "w.db").resolve()) and s["file_bytes"] > 0 and s["wal_bytes"] >= 0
    assert s["tables"]["entries"] == PER_POLL and s["tables"]["hits"] == PER_POLL - 30 and s["tables"]["feeds"] == 1
    assert s["entries_pruned"] == 30
    (feed,) = s["feeds"]
    assert feed["name"] == "wire" and feed["entries"] == PER_POLL and feed["pruned"] == 30
    assert feed["hits"] == PER_POLL - 30 and feed["oldest"].endswith("Z")

    assert main(["--db", str(tmp_path / "w.db"), "db", "stats"]) == 0
    text = capsys.readouterr().out
    assert "WAL" in text and "30 pruned" in text and "wire" in text
