"""A pipeline on a real SQLite file and a real HTTP fetcher, with an injected clock and random source.

Time-based behaviour (backoff, Retry-After, caching, health thresholds) is tested by moving the clock, never by
sleeping: the fetches are real, the hours are not.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from watcher.config import FeedConfig
from watcher.fetch import HttpFetcher
from watcher.models import FeedState, PollReport
from watcher.pipeline import Pipeline
from watcher.rules import RuleSet
from watcher.store import Store


class Clock:
    """A settable clock: ``clock()`` is now; ``advance(hours=1)`` moves it."""

    def __init__(self, start: datetime) -> None:
        self.t = start

    def __call__(self) -> datetime:
        return self.t

    def advance(self, **delta: float) -> datetime:
        self.t += timedelta(**delta)
        return self.t

    def to(self, when: datetime | None) -> datetime:
        assert when is not None
        self.t = when
        return self.t


def feed(name: str, url: str, interval: float = 60, **kw: float) -> FeedConfig:
    return FeedConfig(name=name, url=url, interval=interval, timeout=2, deadline=5, **kw)  # type: ignore[arg-type]


@dataclass
class Harness:
    store: Store
    pipeline: Pipeline
    clock: Clock

    async def poll(self, f: FeedConfig, *, force: bool = False) -> PollReport:
        return await self.pipeline.poll_feed(f, force=force)

    def state(self, name: str) -> FeedState:
        s = self.store.feed_state(name)
        assert s is not None
        return s


@asynccontextmanager
async def harness(db: Path, clock: Clock, seed: int = 7) -> AsyncIterator[Harness]:
    store = Store.open(str(db))
    async with HttpFetcher(user_agent="watcher-test/1") as fetcher:
        pipeline = Pipeline(store, fetcher, lambda: RuleSet([]), now=clock, rng=random.Random(seed))
        try:
            yield Harness(store, pipeline, clock)
        finally:
            pipeline.close()
            store.close()
