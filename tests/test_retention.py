"""Retention on a real SQLite file with an injected clock: what is pruned, what is kept, and an old item that
reappears in a feed is not alerted again (through the real pipeline and a real HTTP feed server)."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from servers import FeedServer, make_rss

from watcher.config import load_config, load_feeds, load_rules
from watcher.errors import ConfigError
from watcher.fetch import HttpFetcher
from watcher.models import Entry, Hit
from watcher.notify import Deliverer
from watcher.pipeline import Pipeline
from watcher.retention import DAY, RetentionPolicy, prune, schedule_daily
from watcher.scheduler import Daemon
from watcher.store import PollWrite, Store

T0 = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)


class Clock:
    """The injected `now`: moves only when the test says so."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, days: float) -> None:
        self.now += timedelta(days=days)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(str(tmp_path / "w.db"))
    yield s
    s.close()


def hit(rule: str = "deal") -> Hit:
    return Hit(
        rule=rule,
        rule_version="v1",
        tags=("compute-contracts",),
        severity="notable",
        notify=("console",),
        matched=("billion",),
    )


def write(store: Store, now: datetime, keys: list[str], hit_keys: set[str]) -> None:
    state = store.sync_feeds([("f", "https://e/feed")], now)["f"]
    store.record_poll(
        PollWrite(
            feed_id=state.feed_id,
            now=now,
            url="https://e/feed",
            http_status=200,
            etag=None,
            last_modified=None,
            title="F",
            entries=[Entry(key=k, title=f"title {k}", link=f"https://e/{k}", summary="s", content="c") for k in keys],
            hits={k: [hit()] for k in hit_keys},
            alert_cutoff=None,
        )
    )


def rows(store: Store) -> dict[str, tuple[str, str]]:
    with store.engine.connect() as conn:
        return {r[0]: (r[1], r[2]) for r in conn.exec_driver_sql("select key, title, summary from entries")}


def test_prune_empties_old_unmatched_entries_keeps_hits_then_drops_keys(store: Store) -> None:
    write(store, T0, ["old-miss", "old-hit"], {"old-hit"})
    write(store, T0 + timedelta(days=80), ["recent-miss"], set())
    policy = RetentionPolicy(entries=90 * DAY, hits=None, keys=365 * DAY)

    dry = prune(store, policy, T0 + timedelta(days=91), dry_run=True)
    assert (dry.entries_emptied, dry.entries_deleted, dry.hits_deleted) == (1, 0, 0)
    assert rows(store)["old-miss"] == ("title old-miss", "s")  # a dry run changes nothing

    report = prune(store, policy, T0 + timedelta(days=91))
    assert (report.entries_emptied, report.entries_deleted, report.hits_deleted) == (1, 0, 0)
    r = rows(store)
    assert r["old-miss"] == ("", "")  # text gone, key kept
    assert r["old-hit"] == ("title old-hit", "s")  # an entry with a hit is kept whole
    assert r["recent-miss"] == ("title recent-miss", "s")
    assert store.counts()["hits"] == 1 and store.counts()["alerts"] == 1
    assert prune(store, policy, T0 + timedelta(days=91)).entries_emptied == 0  # idempotent

    report = prune(store, policy, T0 + timedelta(days=366))
    assert report.entries_deleted == 1 and "old-miss" not in rows(store)
    assert report.entries_emptied == 1  # recent-miss is now past 90 days
    assert "old-hit" in rows(store) and store.counts()["hits"] == 1  # hits: forever


def test_expired_hits_go_with_their_alerts_except_pending_ones(store: Store) -> None:
    write(store, T0, ["a", "b"], {"a", "b"})
    with store.begin() as conn:  # a's alert was delivered; b's is still pending
        conn.exec_driver_sql(
            "update alerts set state='sent' where hit_id=(select h.id from hits h join entries e on e.id=h.entry_id "
            "where e.key='a')"
        )
    policy = RetentionPolicy(entries=30 * DAY, hits=60 * DAY, keys=365 * DAY)
    report = prune(store, policy, T0 + timedelta(days=61))
    assert (report.hits_deleted, report.alerts_deleted, report.entries_emptied) == (1, 1, 1)
    assert store.counts() == {"feeds": 1, "entries": 2, "hits": 1, "alerts": 1}
    assert rows(store)["a"] == ("", "") and rows(store)["b"] == ("title b", "s")


def test_prune_works_in_batches_and_stops_between_them(store: Store) -> None:
    write(store, T0, [f"k{i}" for i in range(25)], set())
    policy = RetentionPolicy(entries=DAY, keys=2 * DAY)
    calls = []

    def stop_after_two() -> bool:
        calls.append(1)
        return len(calls) > 2

    report = prune(store, policy, T0 + timedelta(days=1.5), batch=10, should_stop=stop_after_two)
    assert not report.complete and report.entries_emptied == 20
    report = prune(store, policy, T0 + timedelta(days=1.5), batch=10)
    assert report.complete and report.entries_emptied == 5
    assert all(v == ("", "") for v in rows(store).values())


FEEDS = """\
defaults:
  timeout: 2s
  deadline: 4s
retention:
  entries: 90d
  hits: 30d
  keys: 365d
feeds:
  - name: wire
    url: {url}
"""
RULES = "rules:\n  - name: deal\n    tags: [compute-contracts]\n    any: [billion]\n"


def test_an_old_item_reappearing_is_not_alerted_again(tmp_path: Path, feed_server: FeedServer) -> None:
    """The dedupe key outlives the text and the hit: the pipeline sees the old item as known, not new."""
    clock = Clock(T0)
    old = {"guid": "old-deal", "title": "Anthropic buys $30 billion of compute", "published": T0 - timedelta(hours=1)}
    noise = {"guid": "noise", "title": "Weather", "published": T0 - timedelta(hours=1)}
    url = feed_server.add("/rss.xml", make_rss([old, noise]))
    (tmp_path / "feeds.yaml").write_text(FEEDS.format(url=url))
    (tmp_path / "rules.yaml").write_text(RULES)
    feeds = load_feeds(tmp_path / "feeds.yaml")
    rules = load_rules(tmp_path / "rules.yaml", {})
    assert feeds.retention == RetentionPolicy(entries=90 * DAY, hits=30 * DAY, keys=365 * DAY)
    store = Store.open(str(tmp_path / "w.db"))
    console = io.StringIO()

    async def poll() -> tuple[int, int]:
        async with HttpFetcher(user_agent="test") as fetcher:
            pipeline = Pipeline(store, fetcher, lambda: rules.rules, now=clock)
            try:
                report = await pipeline.poll_feed(feeds.feeds[0])
            finally:
                pipeline.close()
        assert report.status == "ok", report
        delivery = await Deliverer(store, rules.destinations, now=clock, console=console).deliver_pending()
        assert delivery.sent == report.alerts
        return report.new_entries, report.alerts

    try:
        assert asyncio.run(poll()) == (2, 1)  # the deal is alerted once
        clock.advance(100)  # hits (30d) and entries (90d) expire; keys (365d) stay
        report = prune(store, feeds.retention, clock())
        assert (report.hits_deleted, report.alerts_deleted, report.entries_emptied) == (1, 1, 2)
        assert store.counts()["hits"] == 0 and store.counts()["entries"] == 2

        # the feed republishes its old items beside a new one (a new body: a 200, not a 304)
        new = {"guid": "new-deal", "title": "Meta signs $10 billion cloud deal", "published": clock()}
        feed_server.add("/rss.xml", make_rss([new, old, noise]))
        assert asyncio.run(poll()) == (1, 1)  # only the new item: the old deal is not alerted again
        titles = {h["title"] for h in store.recent_hits()}
        assert titles == {"Meta signs $10 billion cloud deal"}
        assert console.getvalue().count("=== ALERT deal: Anthropic buys $30 billion of compute") == 1

        clock.advance(300)  # now past keys (365d) for the old items: their rows go
        report = prune(store, feeds.retention, clock())
        assert report.entries_deleted == 2
        assert store.counts()["entries"] == 1
    finally:
        store.close()


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ("  entries: 90\n", "feeds.yaml:3: 'entries' in retention must be at least 1d or 'forever'"),
        ("  hits: soon\n", "feeds.yaml:3: 'hits' in retention: 'soon' is not a duration"),
        ("  entries: 90d\n  keys: 30d\n", "feeds.yaml:4: 'keys' in retention (30d) must be at least 'entries' (90d)"),
        ("  entries: forever\n", "feeds.yaml:2: 'keys' in retention (365d) must be at least 'entries' (forever)"),
        ("  entires: 90d\n", "feeds.yaml:3: unknown key 'entires' in retention (did you mean 'entries'?)"),
    ],
)
def test_retention_errors_point_at_the_line(tmp_path: Path, block: str, message: str) -> None:
    p = tmp_path / "feeds.yaml"
    p.write_text("feeds: []\nretention:\n" + block)
    with pytest.raises(ConfigError) as e:
        load_feeds(p)
    assert any(str(i).replace(str(tmp_path) + "/", "").startswith(message) for i in e.value.issues), e.value.issues


def test_retention_defaults_and_forever(tmp_path: Path) -> None:
    p = tmp_path / "feeds.yaml"
    p.write_text("feeds: []\n")
    assert load_feeds(p).retention == RetentionPolicy(entries=90 * DAY, hits=None, keys=365 * DAY)
    p.write_text("feeds: []\nretention:\n  hits: 400d\n  keys: forever\n")
    assert load_feeds(p).retention == RetentionPolicy(entries=90 * DAY, hits=400 * DAY, keys=None)


def test_the_daemon_runs_retention_as_a_scheduler_job(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    (tmp_path / "feeds.yaml").write_text("retention:\n  entries: 30d\nfeeds: []\n")
    (tmp_path / "rules.yaml").write_text(RULES)
    config = load_config(tmp_path / "feeds.yaml", tmp_path / "rules.yaml")
    store = Store.open(str(tmp_path / "w.db"))
    write(store, now - timedelta(days=31), ["old"], set())
    write(store, now - timedelta(days=1), ["recent"], set())

    async def main() -> None:
        async with HttpFetcher(user_agent="test") as fetcher:
            pipeline = Pipeline(store, fetcher, lambda: config.rules.rules)
            daemon = Daemon(config, pipeline, Deliverer(store, {}), load_config=lambda: config)
            schedule_daily(daemon, store, first_after=0.2)
            assert daemon.scheduler.get_job("retention") is not None

            async def stop_when_pruned() -> None:
                for _ in range(200):
                    await asyncio.sleep(0.05)
                    if rows(store)["old"] == ("", ""):
                        break
                daemon.request_stop()

            try:
                await asyncio.gather(daemon.run(), stop_when_pruned())
            finally:
                pipeline.close()

    try:
        asyncio.run(main())
        assert rows(store) == {"old": ("", ""), "recent": ("title recent", "s")}
    finally:
        store.close()
