"""The store on a real SQLite file: pragmas, one-transaction writes, dedupe, the backfill window, the outbox."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from watcher.errors import StoreError
from watcher.models import Entry, Hit
from watcher.notify.alertdb import AlertDB
from watcher.store import PollWrite, Store, feeds

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def hit(rule: str = "r", notify: tuple[str, ...] = ("console",)) -> Hit:
    return Hit(
        rule=rule, rule_version="v1", tags=("rival-deals",), severity="notable", notify=notify, matched=("nvidia",)
    )


def entry(key: str, published: datetime | None = NOW) -> Entry:
    return Entry(key=key, title=f"title {key}", link=f"https://e/{key}", published=published)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store.open(str(tmp_path / "w.db"))
    yield s
    s.close()


def write(
    store: Store, entries: list[Entry], hits: dict[str, list[Hit]], cutoff: datetime | None = None, now: datetime = NOW
) -> tuple[int, int, int]:
    state = store.sync_feeds([("f", "https://e/feed")], now)["f"]
    c = store.record_poll(
        PollWrite(
            feed_id=state.feed_id,
            now=now,
            url="https://e/feed",
            http_status=200,
            etag='"e1"',
            last_modified=None,
            title="F",
            entries=entries,
            hits=hits,
            alert_cutoff=cutoff,
        )
    )
    return c.new_entries, c.hits, c.alerts


def test_sqlite_pragmas(tmp_path: Path, store: Store) -> None:
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 5000


def test_record_poll_is_idempotent(store: Store) -> None:
    es = [entry("a"), entry("b")]
    assert write(store, es, {"a": [hit()]}) == (2, 1, 1)
    assert write(store, es, {"a": [hit()]}) == (0, 0, 0)  # same entries again: nothing new, nothing alerted
    assert store.counts() == {"feeds": 1, "entries": 2, "hits": 1, "alerts": 1}
    state = store.feed_state("f")
    assert state is not None and state.etag == '"e1"' and state.last_success_at == NOW


def test_backfill_cutoff_stores_hits_but_alerts_only_recent(store: Store) -> None:
    old, recent, undated = (
        entry("old", NOW - timedelta(days=30)),
        entry("new", NOW - timedelta(hours=1)),
        entry("undated", None),
    )
    counts = write(
        store, [old, recent, undated], {k: [hit()] for k in ("old", "new", "undated")}, cutoff=NOW - timedelta(days=2)
    )
    assert counts == (3, 3, 1)
    (pending,) = AlertDB(store).due(NOW)
    assert pending.title == "title new"


def test_one_alert_per_destination(store: Store) -> None:
    write(store, [entry("a")], {"a": [hit(notify=("slack", "email", "slack"))]})
    assert sorted(a.destination for a in AlertDB(store).due(NOW)) == ["email", "slack"]


def test_outbox_states(store: Store) -> None:
    db = AlertDB(store)
    write(store, [entry("a")], {"a": [hit()]})
    (a,) = db.due(NOW)
    db.record_delivered([a.id], "t1", "slack[0] (slack://)", NOW)
    db.mark_failed(a.id, attempts=1, error="down", next_attempt_at=NOW + timedelta(minutes=5), dead=False, now=NOW)
    assert db.due(NOW) == []
    (again,) = db.due(NOW + timedelta(minutes=5))
    assert again.attempts == 1 and again.delivered == ("t1",)
    assert again.targets["t1"]["state"] == "sent" and again.targets["t1"]["label"] == "slack[0] (slack://)"
    db.mark_sent([a.id], NOW)
    assert db.due(NOW + timedelta(days=1)) == []
    assert store.alert_counts() == {"sent": 1}


def test_failure_counts_and_reset(store: Store) -> None:
    state = store.sync_feeds([("f", "https://e/feed")], NOW)["f"]
    store.record_failure(state.feed_id, NOW, 500, "HTTP 500")
    store.record_failure(state.feed_id, NOW + timedelta(minutes=15), 500, "HTTP 500")
    (row,) = store.feeds_overview()
    assert (
        row["consecutive_failures"] == 2
        and row["status"] == "failed"
        and row["failing_since"] == "2026-11-27T12:00:00Z"
    )
    store.record_not_modified(state.feed_id, NOW + timedelta(minutes=30), 304)
    (row,) = store.feeds_overview()
    assert row["consecutive_failures"] == 0 and row["failing_since"] is None


def test_changed_url_resets_validators(store: Store) -> None:
    write(store, [entry("a")], {})
    store.sync_feeds([("f", "https://e/moved")], NOW)
    state = store.feed_state("f")
    assert state is not None and state.url == "https://e/moved" and state.etag is None


def test_recent_hits_shape(store: Store) -> None:
    write(store, [entry("a")], {"a": [hit("r1"), hit("r2")]})
    rows = store.recent_hits(limit=10)
    assert {r["rule"] for r in rows} == {"r1", "r2"}
    assert set(rows[0]) >= {"rule", "tags", "title", "link", "feed", "published", "matched", "first_seen"}
    assert store.recent_hits(rule="r1")[0]["rule"] == "r1"
    assert store.recent_hits(since=NOW + timedelta(days=1)) == []


def test_foreign_keys_enforced(store: Store) -> None:
    import sqlalchemy as sa

    from watcher.store import hits

    with pytest.raises(sa.exc.IntegrityError), store.begin() as conn:
        conn.execute(
            sa.insert(hits).values(
                entry_id=999,
                rule="x",
                rule_version="v",
                tags=[],
                severity="info",
                matched=[],
                details={},
                created_at=NOW,
            )
        )


def test_unopenable_database_is_a_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="does not exist"):
        Store.open(str(tmp_path / "missing-dir" / "w.db"))
    bad = tmp_path / "not-a-db"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError):
        Store.open(str(bad))


def test_file_is_a_real_sqlite_database(tmp_path: Path) -> None:
    s = Store.open(str(tmp_path / "x.db"))
    s.close()
    con = sqlite3.connect(tmp_path / "x.db")
    tables = {r[0] for r in con.execute("select name from sqlite_master where type='table'")}
    con.close()
    assert {"feeds", "entries", "hits", "alerts", "meta"} <= tables


def test_entry_statistics_follow_the_polls(store: Store) -> None:
    """first_entry_at: the first poll's backlog; last_entry_at: the newest; new_entries: those after the backlog
    (the health checks and `watcher feeds` read these instead of aggregating every entry)."""
    write(store, [entry("a"), entry("b"), entry("c")], {}, now=NOW)
    write(store, [], {}, now=NOW + timedelta(hours=1))  # nothing new: nothing changes
    write(store, [entry("a"), entry("d"), entry("e")], {}, now=NOW + timedelta(hours=2))  # "a" is known
    (h,) = store.feed_health()
    assert (h.first_entry_at, h.last_entry_at, h.new_entries) == (NOW, NOW + timedelta(hours=2), 2)
    (row,) = store.feeds_overview()
    assert row["mean_entry_interval"] == 3600.0  # two new entries in the two hours after the backlog


def _states_after_304s(path: Path, json_update: bool, monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    from watcher.policy import Decision
    from watcher.store import NotModifiedWrite

    monkeypatch.setattr(Store, "_json_update", json_update)
    s = Store.open(str(path))
    try:
        states = s.sync_feeds([(f"f{i}", f"https://e/{i}") for i in range(5)], NOW)
        ids = [states[f"f{i}"].feed_id for i in range(5)]
        s.record_failure(ids[0], NOW, 500, "HTTP 500")  # failing before: the 304 resets it
        later = NOW + timedelta(minutes=15)
        s.record_not_modified_many(
            [
                NotModifiedWrite(ids[0], later, 304),  # no decision: politeness columns untouched
                NotModifiedWrite(ids[1], later, 304, Decision(later + timedelta(hours=1), "max-age", 0, None, 0)),
                NotModifiedWrite(ids[2], later, 304, Decision(later, "interval", 0, "https://e/new2", 2)),
                NotModifiedWrite(
                    ids[3], later, 304, Decision(later, "interval", 0, None, 0, move_to="https://e/moved3")
                ),
                NotModifiedWrite(ids[4], later, 304, Decision(None, "gone", 0, None, 0, gone=True)),
            ]
        )
        with s.begin() as conn:
            return [tuple(r) for r in conn.execute(sa.select(feeds).order_by(feeds.c.id)).all()]
    finally:
        s.close()


def test_304_states_written_in_one_statement_match_the_row_by_row_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The single-statement write (UPDATE ... FROM json_each) must store exactly what the per-row update stores."""
    one = _states_after_304s(tmp_path / "json.db", True, monkeypatch)
    each = _states_after_304s(tmp_path / "rows.db", False, monkeypatch)
    assert one == each
    by_name = {r[1]: r for r in one}
    assert by_name["f0"][feeds.c.keys().index("consecutive_failures")] == 0
    assert by_name["f0"][feeds.c.keys().index("last_status")] == "not-modified"
    assert by_name["f1"][feeds.c.keys().index("next_poll_reason")] == "max-age"
    assert by_name["f3"][feeds.c.keys().index("moved_to")] == "https://e/moved3"
    assert by_name["f4"][feeds.c.keys().index("gone_at")] == NOW + timedelta(minutes=15)
