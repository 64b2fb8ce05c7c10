"""A compressed-time soak: the real daemon (APScheduler), pipeline, outbox and retention over simulated months.

Feeds on a local server keep publishing on a simulated calendar (a clock running SPEED times faster than the
wall clock: one simulated day per DAY_SECONDS real seconds); the daemon polls them on real short intervals and
every time-based decision (published dates, backfill window, retention, retries) reads the compressed clock.
Measured as it runs: resident memory, open file descriptors and the rows retention keeps. At the end: every item
was stored once and every matching item alerted exactly once to a real webhook receiver.

WATCHER_SOAK_SECONDS sets the real duration (default 30 s, about 60 simulated days); run with -s to see the
figures.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from servers import FeedServer, WebhookReceiver, make_rss

from watcher.config import load_config
from watcher.fetch import HttpFetcher
from watcher.notify import Deliverer, Renderer
from watcher.pipeline import Pipeline
from watcher.retention import schedule_daily
from watcher.scheduler import Daemon
from watcher.store import Store

DAY_SECONDS = 0.5  # real seconds per simulated day
SPEED = 86400 / DAY_SECONDS
FEEDS = 4
ITEM_EVERY = timedelta(hours=8)  # each feed publishes three items a simulated day
WINDOW = 15  # items a feed shows (five simulated days)
T0 = datetime(2026, 1, 1, tzinfo=UTC)


class CompressedClock:
    def __init__(self) -> None:
        self.m0 = time.monotonic()

    def __call__(self) -> datetime:
        return T0 + timedelta(seconds=(time.monotonic() - self.m0) * SPEED)


def item(feed: int, n: int) -> dict[str, object]:
    when = T0 + ITEM_EVERY * n + timedelta(hours=feed)
    if n % 3 == 0:
        title = f"Feed {feed} story {n}: Nvidia signs a $10 billion compute deal"
    else:
        title = f"Feed {feed} story {n}: weekly notes"
    return {
        "guid": f"f{feed}-{n}",
        "title": title,
        "link": f"https://n.example/{feed}/{n}",
        "summary": "x" * 600,
        "published": when,
    }


def published_until(feed: int, when: datetime) -> int:
    """How many items feed `feed` has published by simulated time `when`."""
    first = T0 + timedelta(hours=feed)
    return 0 if when < first else int((when - first) / ITEM_EVERY) + 1


class Publisher(threading.Thread):
    """Keeps each feed's document in step with the simulated calendar until frozen."""

    def __init__(self, server: FeedServer, clock: CompressedClock) -> None:
        super().__init__(daemon=True)
        self.server, self.clock = server, clock
        self.counts = [0] * FEEDS
        self.frozen = threading.Event()
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            if not self.frozen.is_set():
                now = self.clock()
                for f in range(FEEDS):
                    n = published_until(f, now)
                    if n != self.counts[f]:
                        items = [item(f, i) for i in range(max(0, n - WINDOW), n)][::-1]
                        self.server.add(f"/f{f}.xml", make_rss(items, title=f"feed {f}"))
                        self.counts[f] = n
            time.sleep(0.05)


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_soak(tmp_path: Path, feed_server: FeedServer, webhook: WebhookReceiver) -> None:
    seconds = float(os.environ.get("WATCHER_SOAK_SECONDS", "30"))
    clock = CompressedClock()
    for f in range(FEEDS):
        feed_server.add(f"/f{f}.xml", make_rss([], title=f"feed {f}"))
    (tmp_path / "feeds.yaml").write_text(
        "defaults:\n  interval: 1s\n  start_offset: 0s\n  timeout: 2s\n  deadline: 5s\n"
        "  backfill_alert_window: 30d\n"  # a slow start (simulated days pass fast) must not eat the first items
        "retention:\n  entries: 7d\n  keys: 14d\n"
        "feeds:\n" + "".join(f"  - name: f{f}\n    url: {feed_server.url_for(f'/f{f}.xml')}\n" for f in range(FEEDS))
    )
    (tmp_path / "rules.yaml").write_text(
        f"notify:\n  hook: ['{webhook.apprise_url()}']\n"
        "rules:\n  - name: deal\n    tags: [compute-contracts]\n"
        "    all: [nvidia, {amount: {currency: USD, min: 1e9}}]\n"
    )
    config = load_config(tmp_path / "feeds.yaml", tmp_path / "rules.yaml")
    store = Store.open(str(tmp_path / "w.db"))
    publisher = Publisher(feed_server, clock)
    samples: list[dict[str, float]] = []

    def sample() -> None:
        con = sqlite3.connect(tmp_path / "w.db")
        try:
            with_text = con.execute(
                "select count(*) from entries e where title != '' and not exists "
                "(select 1 from hits h where h.entry_id = e.id)"
            ).fetchone()[0]
            rows = con.execute("select count(*) from entries").fetchone()[0]
        finally:
            con.close()
        samples.append(
            {
                "t": time.monotonic() - clock.m0,
                "day": (clock() - T0).total_seconds() / 86400,
                "rss_mb": rss_mb(),
                "fds": open_fds(),
                "unmatched_with_text": with_text,
                "entry_rows": rows,
            }
        )

    async def main() -> None:
        async with HttpFetcher(user_agent="watcher-soak", concurrency=4, per_host=4) as fetcher:
            pipeline = Pipeline(store, fetcher, lambda: config.rules.rules, now=clock)
            rules = config.rules
            deliverer = Deliverer(
                store,
                rules.destinations,
                rule_policies=rules.rule_policies,
                renderer=Renderer(rules.templates),
                now=clock,
            )
            daemon = Daemon(config, pipeline, deliverer, load_config=lambda: config, drain_deadline=10)
            schedule_daily(daemon, store, first_after=DAY_SECONDS, every=DAY_SECONDS, now=clock)
            clock.m0 = time.monotonic()  # the calendar starts with the daemon
            runner = asyncio.create_task(daemon.run())
            publisher.start()
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                await asyncio.sleep(1.0)
                await asyncio.to_thread(sample)
            publisher.frozen.set()  # stop publishing; let the daemon catch up and deliver
            await asyncio.sleep(3.0)
            daemon.request_stop()
            await runner
            pipeline.close()

    try:
        asyncio.run(main())
    finally:
        publisher.stopped.set()
        if publisher.is_alive():
            publisher.join(timeout=2)
        store.close()

    expected_matching = {item(f, n)["title"] for f in range(FEEDS) for n in range(publisher.counts[f]) if n % 3 == 0}
    total = sum(publisher.counts)
    con = sqlite3.connect(tmp_path / "w.db")
    try:
        hit_titles = [r[0] for r in con.execute("select e.title from hits h join entries e on e.id = h.entry_id")]
        sent = con.execute("select count(*) from alerts where state = 'sent'").fetchone()[0]
        integrity = con.execute("pragma integrity_check").fetchone()[0]
    finally:
        con.close()
    received = [r.body["title"] for r in webhook.received]
    warm = [s for s in samples if s["t"] >= min(10.0, seconds / 3)]
    figures = {
        "real_seconds": round(seconds, 1),
        "simulated_days": round(samples[-1]["day"], 1),
        "items_published": total,
        "matching_items": len(expected_matching),
        "hits": len(hit_titles),
        "alerts_received": len(received),
        "rss_mb_first_last_max": [
            round(warm[0]["rss_mb"], 1),
            round(warm[-1]["rss_mb"], 1),
            round(max(s["rss_mb"] for s in warm), 1),
        ],
        "fds_first_last": [warm[0]["fds"], warm[-1]["fds"]],
        "unmatched_with_text_by_third": [
            int(max(s["unmatched_with_text"] for s in part))
            for part in (
                samples[: len(samples) // 3],
                samples[len(samples) // 3 : 2 * len(samples) // 3],
                samples[2 * len(samples) // 3 :],
            )
        ],
        "entry_rows_last": samples[-1]["entry_rows"],
    }
    print("\nsoak figures:", json.dumps(figures))

    assert integrity == "ok"
    # every matching item stored once (hits are kept forever) and alerted exactly once
    assert sorted(hit_titles) == sorted(expected_matching)
    assert sorted(received) == sorted(f"deal: {t}" for t in expected_matching) or (
        sorted(r.split(": ", 1)[1] for r in received) == sorted(expected_matching)
    ), received[:5]
    assert sent == len(expected_matching)
    # memory flat after warm-up, no descriptor leak
    assert max(s["rss_mb"] for s in warm) - warm[0]["rss_mb"] < 40, figures
    assert warm[-1]["fds"] <= warm[0]["fds"] + 5, figures
    # retention holds the text of about 7 simulated days of non-matching items, not everything ever seen
    per_day = FEEDS * 2  # unmatched items per simulated day
    if figures["simulated_days"] > 30:
        last_third = figures["unmatched_with_text_by_third"][2]
        assert last_third <= per_day * 9, figures  # 7 days of unmatched items (8 per day), plus a day of slack
        assert figures["entry_rows_last"] < total, figures  # keys older than 14 days are gone too
