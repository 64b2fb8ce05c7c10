"""Feed health: the state `watcher feeds` shows, and operational alerts when a feed needs attention.

A feed is in one alert *condition* at a time, worked out from the store's facts with an injected clock (pure):

    disabled   it answered 410 Gone (policy.py): not polled until its URL changes
    failing    every poll has failed for longer than ``alert_failing_after`` (default 24 h)
    silent     it usually publishes daily (mean interval between new entries at most a day, over at least
               three new entries) and nothing new arrived for ``alert_silent_after`` (default 3 d)
    ok         none of these

An alert goes to the ``ops_notify`` destinations (feeds.yaml; default the console) when the condition changes:
failing, disabled, silent, and back to ok ("recovered", "re-enabled", "publishing again"). The condition last
alerted is stored on the feed, so a restart neither repeats an alert nor forgets one: ONE alert per change, not
one per poll or per check. It is stored only once every destination accepted the alert; a destination that
failed gets it again on the next check (one that accepted it may then get a duplicate).

Messages go through ``notify.Sender.send(secret, Message(title, body))`` (or are printed, for the console),
not through the hit outbox: they are about watcher's own sources, not about news.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TextIO

from .config import Config, Destination
from .durations import format_duration
from .models import FeedHealth
from .notify import Message, Sender, clean
from .policy import BACKOFF, RETRY_AFTER
from .store import Store, mean_interval

log = logging.getLogger("watcher.health")

FAILING, SILENT, DISABLED = "failing", "silent", "disabled"


@dataclass(frozen=True)
class HealthSettings:
    """Thresholds of the health alerts (feeds.yaml defaults), in seconds."""

    failing_after: float = 86400  # failing this long: alert
    silent_after: float = 3 * 86400  # a daily publisher silent this long: alert
    daily: float = 86400  # "usually publishes daily": a mean interval between new entries at most this
    min_new_entries: int = 3  # ... measured over at least this many entries seen after the first poll


@dataclass(frozen=True)
class Transition:
    """One feed's alert condition changed: what to send and what to remember."""

    feed_id: int
    feed: str
    old: str | None  # the condition last alerted (None: ok)
    new: str | None  # the condition now
    message: Message


def usual_interval(h: FeedHealth) -> float | None:
    """Mean seconds between the feed's new entries (the first poll's backlog aside), or None when unknown."""
    return mean_interval(h.first_entry_at, h.last_entry_at, h.new_entries)


def publishes_daily(h: FeedHealth, s: HealthSettings) -> bool:
    mean = usual_interval(h)
    return mean is not None and h.new_entries >= s.min_new_entries and mean <= s.daily


def condition(h: FeedHealth, now: datetime, s: HealthSettings) -> str | None:
    """The feed's alert condition now (None: ok). Pure."""
    if h.gone_at is not None:
        return DISABLED
    failing_for = (now - h.failing_since).total_seconds() if h.failing_since is not None else 0.0
    if h.consecutive_failures > 0 and failing_for >= s.failing_after:
        return FAILING
    if publishes_daily(h, s) and h.last_entry_at is not None:
        silent = (now - h.last_entry_at).total_seconds() >= s.silent_after
        # a silence is only news while polls succeed (a failing feed is silent for that reason); once alerted,
        # it lasts until an entry arrives, so a short run of failures does not read as "publishing again"
        if silent and (h.consecutive_failures == 0 or h.health_alert == SILENT):
            return SILENT
    return None


def display_state(h: FeedHealth, now: datetime, s: HealthSettings) -> str:
    """The one-word state `watcher feeds` shows: disabled, failing, backing off, silent, moved, ok, never polled."""
    cond = condition(h, now, s)
    if cond is not None:
        return cond
    if h.consecutive_failures > 0 or h.next_poll_reason in (RETRY_AFTER, BACKOFF):
        return "backing off"
    if h.moved_to:
        return "moved"
    if h.last_success_at is None:
        return "never polled"
    return "ok"


def _when(dt: datetime | None) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if dt else "never"


def _since(now: datetime, dt: datetime | None) -> str:
    return format_duration(max(0.0, (now - dt).total_seconds())) if dt else "?"


def message(h: FeedHealth, old: str | None, new: str | None, now: datetime) -> Message:
    """The plain-text alert for one change. Feed-derived text (errors, moved URLs) is cleaned: untrusted."""
    name = clean(h.name, 200, one_line=True)
    url = clean(h.moved_to or h.url, 500, one_line=True)
    error = clean(h.last_error or "", 400, one_line=True)
    lines = [f"Feed: {name}", f"URL: {url}"]
    if new == FAILING:
        title = f"feed {name} failing for {_since(now, h.failing_since)}"
        lines += [
            f"Every poll has failed since {_when(h.failing_since)} ({h.consecutive_failures} in a row).",
            f"Last error: {error or '-'}",
            f"Next poll: {_when(h.next_poll_at)} ({h.next_poll_reason or '-'}); watcher keeps trying.",
            "Check the URL in a browser; `watcher feeds` shows every feed's state.",
        ]
    elif new == DISABLED:
        title = f"feed {name} disabled: 410 Gone"
        lines += [
            f"The server answered 410 Gone on {_when(h.gone_at)}: the feed was removed for good.",
            "watcher no longer polls it. Change its url in feeds.yaml (it is polled again at once), remove it, "
            "or try it once more with `watcher poll --force`.",
        ]
    elif new == SILENT:
        mean = usual_interval(h)
        title = f"feed {name} silent for {_since(now, h.last_entry_at)}"
        lines += [
            f"It usually publishes every {format_duration(mean or 0)}; nothing new since {_when(h.last_entry_at)}.",
            f"Polls succeed (last success {_when(h.last_success_at)}): the publisher may have stopped updating "
            "this feed or moved it elsewhere.",
        ]
        if old == FAILING:
            lines.insert(2, "Polls succeed again after failing.")
    elif old == DISABLED:
        title = f"feed {name} re-enabled"
        lines += [f"It is polled again (last success {_when(h.last_success_at)})."]
    elif old == SILENT:
        title = f"feed {name} publishing again"
        lines += [f"A new entry arrived (first seen {_when(h.last_entry_at)})."]
    else:
        title = f"feed {name} recovered"
        lines += [f"Polls succeed again (last success {_when(h.last_success_at)}, HTTP {h.last_http_status or '-'})."]
    return Message(title=clean(f"[watcher] {title}", 200, one_line=True), body="\n".join(lines))


def transitions(
    feeds: Sequence[FeedHealth], now: datetime, s: HealthSettings, only: Collection[str] | None = None
) -> list[Transition]:
    """The feeds whose condition differs from the one last alerted. Pure."""
    out = []
    for h in feeds:
        if only is not None and h.name not in only:
            continue
        new = condition(h, now, s)
        if new != h.health_alert:
            out.append(Transition(h.feed_id, h.name, h.health_alert, new, message(h, h.health_alert, new, now)))
    return out


class HealthMonitor:
    """Checks every feed's condition and alerts on changes. Call :meth:`check` after polls or on a timer."""

    def __init__(
        self,
        store: Store,
        destinations: Sequence[Destination],
        settings: HealthSettings,
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        sender: Sender | None = None,
        console: TextIO | None = None,
    ) -> None:
        self.store = store
        self.destinations = destinations  # replaced on a config reload
        self.settings = settings  # replaced on a config reload
        self.now = now
        self.sender = sender or Sender()
        self.console = console
        self._lock = asyncio.Lock()

    async def check(self, feeds: Collection[str] | None = None) -> list[Transition]:
        """Alert every change of condition among `feeds` (names; None: all); return those that were sent."""
        async with self._lock:
            now = self.now()
            rows = await asyncio.to_thread(self.store.feed_health)
            sent = []
            for t in transitions(rows, now, self.settings, feeds):
                if await self._send(t):
                    await asyncio.to_thread(self.store.set_health_alert, t.feed_id, t.new, now)
                    log.info("feed %s: health %s -> %s (alert sent)", t.feed, t.old or "ok", t.new or "ok")
                    sent.append(t)
            return sent

    async def _send(self, t: Transition) -> bool:
        ok = True
        for dest in self.destinations:
            if dest.is_console:
                out = self.console or sys.stdout
                out.write(f"\n=== ALERT {t.message.title}\n{t.message.body}\n")
                out.flush()
                continue
            for secret in dest.urls:
                try:
                    accepted, reason = await self.sender.send(secret, t.message)
                except Exception as e:  # a sender bug must not stop the health checks; the alert is retried
                    accepted, reason = False, f"{secret.label}: {type(e).__name__}"
                if not accepted:
                    ok = False
                    log.warning(
                        "health alert for feed %s to %s failed (retried next check): %s", t.feed, dest.name, reason
                    )
        return ok


def ops_destinations(config: Config) -> list[Destination]:
    """The destinations of feed-health alerts (feeds.yaml ``ops_notify``, checked against rules.yaml)."""
    return [config.rules.destinations[n] for n in config.feeds.defaults.ops_notify]


def health_settings(config: Config) -> HealthSettings:
    d = config.feeds.defaults
    return HealthSettings(failing_after=d.alert_failing_after, silent_after=d.alert_silent_after)
