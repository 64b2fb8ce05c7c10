"""Politeness: when a feed may be polled next, and what a response says about the feed's address. Pure.

Every poll ends with one :class:`Decision`, computed from the feed's previous state and the poll's
:class:`Outcome` with an injected clock value and random source (so tests are deterministic):

- success: the next poll is one interval away, or later when the server asked for it (``Cache-Control:
  max-age``, ``Expires``, RSS ``<ttl>``): a lower bound, capped by ``max_cache_wait`` so a bad header cannot stop
  polling for days;
- failure (5xx, timeouts, connection failures, 404, a page that is not a feed...): exponential backoff from the
  interval, doubling with each consecutive failure, with up to 20% jitter (fewer feeds retrying in lockstep),
  capped by ``max_backoff`` and never giving up; the next success resets it. 429 and 503 honour
  ``Retry-After`` (seconds or a date) when it asks for longer, up to the same cap;
- 410 Gone disables the feed (until its URL changes in feeds.yaml, or ``watcher poll --force`` succeeds);
- a permanent redirect (301/308) to the same place on ``MOVE_AFTER`` consecutive successful polls moves the feed
  to that URL; a temporary one (302/307) never does. A failed poll neither counts nor breaks the streak.

The daemon and ``watcher poll`` only *hold back* a feed for the server's or the backoff's reasons
(:func:`held_until`); the plain interval is the scheduler's business (and cron's, for ``watcher poll``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from .models import FeedState, Freshness

MOVE_AFTER = 3  # consecutive successful polls permanently redirected to one URL before the feed moves there
JITTER = 0.2  # a backoff delay is shortened by up to this fraction, at random
HOLD_SLACK = 30.0  # seconds: a hold that ends this soon does not hold the poll back (cron runs drift)

INTERVAL, MAX_AGE, EXPIRES, TTL, RETRY_AFTER, BACKOFF, GONE = (
    "interval",
    "max-age",
    "expires",
    "ttl",
    "retry-after",
    "backoff",
    "gone",
)
HOLDS = frozenset({MAX_AGE, EXPIRES, TTL, RETRY_AFTER, BACKOFF})
"""Reasons that hold a feed back: the server asked for it, or the feed is backing off."""


@dataclass(frozen=True)
class Limits:
    """A feed's politeness settings (from feeds.yaml), in seconds."""

    interval: float  # between two polls
    max_backoff: float = 6 * 3600  # longest wait after failures; also caps Retry-After
    max_cache_wait: float = 6 * 3600  # longest wait that max-age / Expires / <ttl> can impose


@dataclass(frozen=True)
class Outcome:
    """What one poll found, as far as scheduling is concerned."""

    ok: bool  # a usable response (200 parsed, or 304)
    http_status: int | None = None  # the last HTTP status, None when no response arrived
    retry_after: float | None = None  # seconds, from a 429/503 Retry-After
    freshness: Freshness | None = None  # from Cache-Control / Expires
    ttl: float | None = None  # seconds, from RSS <ttl> (the parsed one, or the stored one after a 304)
    moved_to: str | None = None  # target of the leading permanent redirects, if any


@dataclass(frozen=True)
class Decision:
    """The feed's scheduling and address state after one poll."""

    next_poll_at: datetime | None  # None: disabled (410), not polled until re-enabled
    next_poll_reason: str  # one of INTERVAL, MAX_AGE, EXPIRES, TTL, RETRY_AFTER, BACKOFF, GONE
    failures: int  # consecutive failures after this poll
    redirect_target: str | None  # the permanent-redirect streak: where to ...
    redirect_count: int  # ... and how many polls in a row
    move_to: str | None = None  # set when this poll completes a streak: fetch this URL from now on
    gone: bool = False  # this poll saw 410 Gone: disable the feed


def backoff_delay(failures: int, limits: Limits, rng: random.Random) -> float:
    """Seconds to wait after ``failures`` consecutive failures: interval x 2^(failures-1), capped, jittered.

    Jitter only shortens (by up to JITTER), so the cap holds and each step still grows (2 x 0.8 > 1).
    """
    exponent = min(max(failures, 1) - 1, 40)  # 2^40 intervals is past any cap; avoids float overflow
    base = min(limits.max_backoff, limits.interval * 2.0**exponent)
    return base * (1.0 - JITTER * rng.random())


def decide(state: FeedState, outcome: Outcome, now: datetime, limits: Limits, rng: random.Random) -> Decision:
    """The next poll time, backoff and redirect streak after one poll of a feed."""
    if not outcome.ok:
        failures = state.consecutive_failures + 1
        streak = (state.redirect_target, state.redirect_count)  # a failure says nothing about a move
        if outcome.http_status == 410:
            return Decision(None, GONE, failures, *streak, gone=True)
        delay, reason = backoff_delay(failures, limits, rng), BACKOFF
        if outcome.http_status in (429, 503) and outcome.retry_after is not None:
            asked = min(outcome.retry_after, limits.max_backoff)
            if asked >= delay:
                delay, reason = asked, RETRY_AFTER
        return Decision(now + timedelta(seconds=delay), reason, failures, *streak)

    delay, reason = limits.interval, INTERVAL
    candidates: list[tuple[float, str]] = []
    if outcome.freshness is not None:
        candidates.append((outcome.freshness.seconds, outcome.freshness.source))
    if outcome.ttl is not None:
        candidates.append((outcome.ttl, TTL))
    if candidates:
        asked, source = max(candidates)
        asked = min(asked, limits.max_cache_wait)
        if asked > delay:
            delay, reason = asked, source
    target, count, move_to = None, 0, None
    if outcome.moved_to and outcome.moved_to != state.url:
        target = outcome.moved_to
        count = state.redirect_count + 1 if state.redirect_target == target else 1
        if count >= MOVE_AFTER:
            move_to, target, count = target, None, 0
    return Decision(now + timedelta(seconds=delay), reason, 0, target, count, move_to=move_to)


def held_until(state: FeedState, now: datetime, slack: float = HOLD_SLACK) -> datetime | None:
    """When a feed held back by the server or its backoff may be polled again; None when it may be now.

    A disabled (410) feed is held indefinitely: ``datetime.max`` (aware), which callers report as "disabled".
    The plain interval never holds a feed here (see the module docstring).
    """
    if state.gone_at is not None:
        return datetime.max.replace(tzinfo=now.tzinfo)
    if state.next_poll_at is None or state.next_poll_reason not in HOLDS:
        return None
    if state.next_poll_at <= now + timedelta(seconds=slack):
        return None
    return state.next_poll_at
