"""A database made by the first schema, filled, upgraded to the newest: every row still there and consistent.

The file is built at revision 0001 with rows in every table (feeds, entries, hits, alerts, with their
references), then opened by the current watcher, which migrates it. Nothing may be lost, foreign keys must
hold, the copy made before the upgrade must exist, and the upgraded database must work: a new poll stores,
matches and alerts through the current code.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from servers import FeedServer, make_rss

from watcher import migrations

NOW = datetime.now(UTC).replace(microsecond=0)
ROOT = Path(__file__).resolve().parent.parent


def fill_first_schema(path: Path) -> dict[str, int]:
    migrations.upgrade(f"sqlite:///{path}", "0001")
    con = sqlite3.connect(path)
    ts = (NOW - timedelta(days=3)).strftime("%Y-%m-%d %H:%M:%S.000000")
    later = (NOW - timedelta(days=1)).strftime("%Y-%m-%d %H:%M:%S.000000")  # first seen by a later poll
    with con:
        for f in range(3):
            con.execute(
                "insert into feeds (id, name, url, etag, last_status, consecutive_failures, created_at) "
                "values (?, ?, ?, ?, 'ok', 0, ?)",
                (f + 1, f"feed{f}", f"http://127.0.0.1:1/{f}.xml", f'"e{f}"', ts),
            )
            for e in range(40):
                eid = f * 100 + e + 1
                con.execute(
                    "insert into entries (id, feed_id, key, title, link, summary, content, author, categories, "
                    "published, first_seen) values (?, ?, ?, ?, ?, '', '', '', '[]', ?, ?)",
                    (
                        eid,
                        f + 1,
                        f"id:{eid}",
                        f"Nvidia $10 billion deal {eid}",
                        f"https://n/{eid}",
                        ts,
                        later if e >= 30 else ts,
                    ),
                )
                if e % 4 == 0:
                    con.execute(
                        "insert into hits (id, entry_id, rule, rule_version, tags, severity, matched, details, "
                        "created_at) values (?, ?, 'deal', 'v1', '[\"compute-contracts\"]', 'notable', "
                        "'[\"billion\"]', '{}', ?)",
                        (eid, eid, ts),
                    )
                    con.execute(
                        "insert into alerts (hit_id, destination, state, attempts, delivered, next_attempt_at, "
                        "sent_at, created_at) values (?, 'console', ?, 1, '[]', ?, ?, ?)",
                        (eid, "sent" if e % 8 == 0 else "pending", ts, ts if e % 8 == 0 else None, ts),
                    )
    counts = {t: con.execute(f"select count(*) from {t}").fetchone()[0] for t in ("feeds", "entries", "hits", "alerts")}
    con.close()
    return counts


def test_first_schema_upgrades_without_losing_a_row(tmp_path: Path, feed_server: FeedServer) -> None:
    db = tmp_path / "old.db"
    before = fill_first_schema(db)
    assert before == {"feeds": 3, "entries": 120, "hits": 30, "alerts": 30}
    con = sqlite3.connect(db)
    snapshot = sorted(con.execute("select id, feed_id, key, title from entries").fetchall())
    con.close()

    url = feed_server.add(
        "/new.xml", make_rss([{"guid": "n1", "title": "OpenAI $20 billion compute deal", "published": NOW}])
    )
    (tmp_path / "feeds.yaml").write_text(f"feeds:\n  - name: fresh\n    url: {url}\n")
    (tmp_path / "rules.yaml").write_text("rules:\n  - name: deal\n    tags: [compute-contracts]\n    any: [billion]\n")
    base = [
        sys.executable,
        "-m",
        "watcher",
        "--feeds",
        str(tmp_path / "feeds.yaml"),
        "--rules",
        str(tmp_path / "rules.yaml"),
        "--db",
        str(db),
    ]
    out = subprocess.run([*base, "db", "upgrade"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert f"upgraded from 0001 to {migrations.head()}" in out.stdout
    assert (tmp_path / "old.db.before-0001.bak").exists()

    con = sqlite3.connect(db)
    try:
        assert con.execute("pragma integrity_check").fetchone()[0] == "ok"
        assert con.execute("pragma foreign_key_check").fetchall() == []
        after = {t: con.execute(f"select count(*) from {t}").fetchone()[0] for t in before}
        assert after == before
        assert sorted(con.execute("select id, feed_id, key, title from entries").fetchall()) == snapshot
        assert con.execute("select count(*) from alerts where state='sent'").fetchone()[0] == 15
        # 0005: each feed's entry statistics, computed from its entries (30 first seen together, 10 later)
        ts = (NOW - timedelta(days=3)).strftime("%Y-%m-%d %H:%M:%S.000000")
        later = (NOW - timedelta(days=1)).strftime("%Y-%m-%d %H:%M:%S.000000")
        stats = con.execute("select first_entry_at, last_entry_at, new_entries from feeds order by id").fetchall()
        assert stats == [(ts, later, 10)] * 3
    finally:
        con.close()

    # and the upgraded database works: a poll stores, matches and alerts; the old pending alerts go out too
    out = subprocess.run([*base, "poll"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "=== ALERT" in out.stdout and "OpenAI $20 billion compute deal" in out.stdout
    assert out.stdout.count("Nvidia $10 billion deal") == 15  # the 15 alerts pending since the first schema
    out = subprocess.run([*base, "db", "upgrade"], capture_output=True, text=True, timeout=120)
    assert "is current" in out.stdout
