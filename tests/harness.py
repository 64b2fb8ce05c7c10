"""Run the real pipeline in-process: real fetcher (httpx to a local server), real SQLite file, real rules, alerts
delivered to a captured console. Faster than ``watcher poll`` as a subprocess when a test polls hundreds of
feeds, and still every part is the real one.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from watcher.config import FeedConfig, RulesConfig, load_rules
from watcher.fetch import HttpFetcher
from watcher.models import PollReport
from watcher.notify import Deliverer
from watcher.pipeline import Pipeline
from watcher.store import Store, entries, feeds

CATCH_ALL_RULES = """\
rules:
  - name: everything
    regex: '.'
"""
"""One rule that matches every entry with any text, alerting to the console: every entry becomes an alert."""


def feed(name: str, url: str, *, timeout: float = 5.0, deadline: float = 10.0, **kw: Any) -> FeedConfig:
    return FeedConfig(
        name=name, url=url, interval=900, timeout=timeout, deadline=deadline, backfill_alert_window=1e9, **kw
    )


@dataclass(frozen=True)
class PollRun:
    reports: dict[str, PollReport]  # feed name -> what its poll did
    console: str  # every alert as the console destination printed it
    db: Path

    def entries(self, feed_name: str | None = None) -> list[dict[str, Any]]:
        """The stored entries of one feed (or all, with their feed's name as "feed"), in insertion order."""
        q = sa.select(entries, feeds.c.name.label("feed")).join(feeds, entries.c.feed_id == feeds.c.id)
        if feed_name is not None:
            q = q.where(feeds.c.name == feed_name)
        store = Store.open(str(self.db))
        try:
            with store.begin() as conn:
                rows = conn.execute(q.order_by(entries.c.id)).all()
            return [dict(r._mapping) for r in rows]
        finally:
            store.close()

    def overview(self) -> dict[str, dict[str, Any]]:
        """``watcher feeds --json``'s rows from the database, by feed name."""
        store = Store.open(str(self.db))
        try:
            return {r["name"]: r for r in store.feeds_overview()}
        finally:
            store.close()


def rules_config(tmp_path: Path, text: str = CATCH_ALL_RULES) -> RulesConfig:
    path = tmp_path / "rules.yaml"
    path.write_text(text, encoding="utf-8")
    return load_rules(path, {})


def poll(
    tmp_path: Path,
    configs: Sequence[FeedConfig],
    *,
    rules: str = CATCH_ALL_RULES,
    concurrency: int = 8,
    per_host: int = 8,
    db_name: str = "watcher.db",
    polled_before: bool = False,
) -> PollRun:
    """One cycle over ``configs`` through the real Pipeline, then delivery of every alert to a captured console.

    polled_before  record a successful poll of every feed first, so this is not a first poll (whose backlog
                   alerts only when dated and recent) and every new entry alerts
    """
    cfg = rules_config(tmp_path, rules)
    db = tmp_path / db_name
    store = Store.open(str(db))
    console = io.StringIO()

    async def go() -> list[PollReport]:
        async with HttpFetcher(user_agent="watcher-test/1", concurrency=concurrency, per_host=per_host) as fetcher:
            pipeline = Pipeline(store, fetcher, lambda: cfg.rules)
            try:
                reports = await pipeline.poll_many(configs)
            finally:
                pipeline.close()
        await Deliverer(store, cfg.destinations, console=console).deliver_pending()
        return reports

    try:
        states = store.sync_feeds([(f.name, f.url) for f in configs], datetime.now(UTC))  # one transaction
        if polled_before:
            for state in states.values():
                store.record_not_modified(state.feed_id, datetime.now(UTC), 304)
        reports = asyncio.run(go())
    finally:
        store.close()
    return PollRun({r.feed: r for r in reports}, console.getvalue(), db)
