"""Apply the current rules to stored entries and compare with the hits stored when they arrived.

The library behind ``watcher rules backtest``: pure (entries in, a diff out), so it sends nothing and writes
nothing. An edit to rules.yaml can be judged on weeks of real entries before it goes live: what it would start
catching, and what it would stop catching.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .rules import RuleSet
from .rules.matcher import Feedinfo, prepare
from .store import StoredEntry


@dataclass(frozen=True)
class Change:
    """One (entry, rule) pair whose outcome differs between the stored hits and the current rules."""

    entry_id: int  # entries.id (as `watcher hits --json` shows entry_id)
    feed: str
    title: str
    link: str
    first_seen: datetime
    rule: str
    stored_version: str | None  # version of the rule that made the stored hit (gone), None for a new match
    current_version: str | None  # version of the current rule, None when it no longer exists or is disabled
    matched: tuple[str, ...] = ()  # what the current rule matched (new)
    details: Mapping[str, Any] = field(default_factory=dict)  # amounts, near spans of the new match

    def as_dict(self) -> dict[str, Any]:
        return {
            "entry_id": self.entry_id,
            "rule": self.rule,
            "feed": self.feed,
            "title": self.title,
            "link": self.link,
            "first_seen": self.first_seen.isoformat(timespec="seconds").replace("+00:00", "Z"),
            "stored_version": self.stored_version,
            "current_version": self.current_version,
            "matched": list(self.matched),
            "details": dict(self.details),
        }


@dataclass(frozen=True)
class BacktestResult:
    entries: int  # entries looked at
    new: tuple[Change, ...]  # would match now, did not before
    gone: tuple[Change, ...]  # matched before, would not now
    unchanged: int  # stored hits the current rules still make


def _change(
    stored: StoredEntry,
    rule: str,
    stored_version: str | None,
    current_version: str | None,
    matched: tuple[str, ...] = (),
    details: Mapping[str, Any] | None = None,
) -> Change:
    e = stored.entry
    return Change(
        stored.id,
        stored.feed,
        e.title,
        e.link,
        stored.first_seen,
        rule,
        stored_version,
        current_version,
        matched,
        dict(details or {}),
    )


def backtest(
    rules: RuleSet,
    batches: Iterable[Sequence[StoredEntry]],
    feeds: Mapping[str, Feedinfo] | None = None,
    *,
    rule: str | None = None,
    progress: Callable[[int], None] = lambda n: None,
) -> BacktestResult:
    """Match every entry of `batches` with `rules` and diff against its stored hits.

    `feeds` gives each feed's name and tags (the ``feed`` field; from feeds.yaml); a feed missing from it is
    matched by name only. `rule` limits both sides to one rule name. `progress` is told how many entries were
    done after each batch.
    """
    feeds = feeds or {}
    versions = {r.name: r.version for r in rules.rules if r.enabled}
    only = [rule] if rule is not None else None
    new: list[Change] = []
    gone: list[Change] = []
    unchanged = n = 0
    for batch in batches:
        for stored in batch:
            n += 1
            info = feeds.get(stored.feed) or Feedinfo(stored.feed)
            now = {h.rule: h for h in rules.match_fields(prepare(stored.entry, info), only)}
            before = {k: v for k, v in stored.hits.items() if rule is None or k == rule}
            for name in now.keys() - before.keys():
                h = now[name]
                new.append(_change(stored, name, None, h.rule_version, h.matched, h.details))
            for name in before.keys() - now.keys():
                gone.append(_change(stored, name, before[name], versions.get(name)))
            unchanged += len(before.keys() & now.keys())
        progress(len(batch))

    def order(c: Change) -> tuple[str, datetime, int]:
        return (c.rule, c.first_seen, c.entry_id)

    return BacktestResult(n, tuple(sorted(new, key=order)), tuple(sorted(gone, key=order)), unchanged)
