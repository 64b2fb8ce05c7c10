"""Helpers for outbox tests: a settable clock, alerts written through the real store, destinations by URL."""

from __future__ import annotations

import io
import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from watcher.models import Entry, Hit
from watcher.notify import Deliverer, Destination, Secret, Sender
from watcher.notify.destinations import scheme_label
from watcher.notify.policy import DeliveryPolicy, PolicyOverride
from watcher.store import PollWrite, Store

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


class Clock:
    """The deliverer's `now`: moved by the test, never by time passing."""

    def __init__(self, at: datetime = T0) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at

    def advance(self, **kw: float) -> None:
        self.at += timedelta(**kw)


def dest(name: str, *urls: str, **policy: Any) -> Destination:
    return Destination(
        name, tuple(Secret(u, scheme_label(name, i, u)) for i, u in enumerate(urls)), DeliveryPolicy(**policy)
    )


_seq = iter(range(1, 1_000_000))


def add_alerts(
    store: Store,
    n: int,
    notify: Sequence[str],
    *,
    now: datetime = T0,
    rule: str = "big-compute",
    severity: str = "notable",
    tags: Sequence[str] = ("compute-contracts",),
    title: str = "Deal {i}: Anthropic commits $30 billion to Azure compute",
    summary: str = "",
    link: str = "https://news.example/{i}",
) -> list[str]:
    """Store n new entries, each with one hit routed to `notify`, as a poll would; return their titles."""
    state = store.sync_feeds([("wire", "https://news.example/feed")], now)["wire"]
    entries, hits, titles = [], {}, []
    for _ in range(n):
        i = next(_seq)
        t = title.format(i=i)
        titles.append(t)
        e = Entry(key=f"k{i}", title=t, link=link.format(i=i), summary=summary, published=now - timedelta(minutes=i))
        entries.append(e)
        hits[e.key] = [
            Hit(
                rule=rule,
                rule_version="v1",
                tags=tuple(tags),
                severity=severity,
                notify=tuple(notify),
                matched=("compute", "billion"),
                details={"amounts": ["USD 30,000,000,000 (up to)"]},
            )
        ]
    store.record_poll(
        PollWrite(
            feed_id=state.feed_id,
            now=now,
            url="https://news.example/feed",
            http_status=200,
            etag=None,
            last_modified=None,
            title="Wire",
            entries=entries,
            hits=hits,
            alert_cutoff=None,
        )
    )
    return titles


def deliverer(
    store: Store,
    destinations: Sequence[Destination],
    clock: Clock,
    *,
    sender: Sender | None = None,
    rules: dict[str, PolicyOverride] | None = None,
    **kw: Any,
) -> Deliverer:
    return Deliverer(
        store,
        {d.name: d for d in (Destination("console"), *destinations)},
        rule_policies=rules or {},
        now=clock,
        sender=sender or Sender(timeout=5.0),
        console=io.StringIO(),
        rng=random.Random(7),
        **kw,
    )
