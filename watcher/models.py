"""The records that travel between the stages of a poll.

All are frozen dataclasses: a stage takes records and returns new ones, it never fills one in step by step.

    FeedState --fetch--> FetchResult --parse--> ParsedFeed(Entry...) --match--> Hit... --store--> Alert...
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal


@dataclass(frozen=True)
class FeedState:
    """What the store remembers of a feed between polls."""

    feed_id: int  # primary key in the store
    name: str  # the feed's name (unique), as in feeds.yaml
    url: str  # the URL to fetch
    etag: str | None = None  # validator from the last 200 response
    last_modified: str | None = None  # validator from the last 200 response
    consecutive_failures: int = 0  # failed polls since the last success
    last_success_at: datetime | None = None  # None: never polled successfully (first poll = backfill)
    configured_url: str = ""  # the URL in feeds.yaml; differs from `url` after a permanent move
    last_poll_at: datetime | None = None  # when the last poll (of any outcome) was recorded
    failing_since: datetime | None = None  # first failure of the current run of failures
    next_poll_at: datetime | None = None  # earliest next poll the politeness policy allows
    next_poll_reason: str | None = None  # why: interval, max-age, expires, ttl, retry-after, backoff
    redirect_target: str | None = None  # where recent polls were permanently redirected (301/308)
    redirect_count: int = 0  # consecutive successful polls redirected there
    gone_at: datetime | None = None  # a 410 Gone was seen: the feed is disabled until its URL changes
    ttl: float | None = None  # the feed's RSS <ttl>, in seconds, from its last parse


# --- fetch -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Freshness:
    """How long a response says it stays fresh: a lower bound on the next poll (politeness)."""

    seconds: float  # from now
    source: Literal["max-age", "expires"]  # the header it came from


@dataclass(frozen=True)
class Fetched:
    """A 200 response whose body was read in full, within the limits."""

    url: str  # final URL after redirects
    status: int  # HTTP status (200), or 0 for file://
    body: bytes  # decoded body (content-encoding removed), at most the size cap
    headers: Mapping[str, str]  # response headers, lower-case names
    etag: str | None = None  # ETag to send next time
    last_modified: str | None = None  # Last-Modified to send next time
    freshness: Freshness | None = None  # Cache-Control max-age / Expires, if the response gave one
    moved_to: str | None = None  # target of the leading permanent redirects (301/308), if any
    kind: Literal["fetched"] = "fetched"


@dataclass(frozen=True)
class NotModified:
    """A 304: nothing changed since the validators we sent; costs no parsing."""

    url: str  # final URL after redirects
    status: int = 304
    freshness: Freshness | None = None  # Cache-Control max-age / Expires, if the response gave one
    moved_to: str | None = None  # target of the leading permanent redirects (301/308), if any
    kind: Literal["not_modified"] = "not_modified"


@dataclass(frozen=True)
class Failed:
    """The fetch did not give a usable body. A value, not an exception: one feed's failure is not an abort."""

    url: str  # URL that was tried
    reason: str  # human-readable cause, secret-free
    status: int | None = None  # HTTP status when a response arrived
    retry_after: float | None = None  # seconds the server asked us to wait (429/503), if any
    moved_to: str | None = None  # target of the leading permanent redirects (301/308), if any
    kind: Literal["failed"] = "failed"


FetchResult = Fetched | NotModified | Failed


# --- parse -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """One feed item, normalised to plain text."""

    key: str  # stable identity within its feed: guid, else canonical link, else a content hash
    title: str  # plain text, whitespace collapsed
    link: str  # absolute URL or ""
    summary: str = ""  # plain text
    content: str = ""  # plain text of the longest content block
    author: str = ""  # plain text
    categories: tuple[str, ...] = ()  # category / tag terms
    published: datetime | None = None  # aware UTC; None when missing, unparseable or in the future


@dataclass(frozen=True)
class ParsedFeed:
    """The result of parsing one response body."""

    title: str  # the feed's own title, plain text
    version: str  # feedparser's version string ("rss20", "atom10", "json11"...)
    entries: tuple[Entry, ...]  # in document order
    warning: str | None = None  # a recoverable problem (feedparser's bozo), kept for the log
    ttl: float | None = None  # RSS <ttl> in seconds (how long the publisher says to cache it), if valid


# --- match -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hit:
    """One rule matched one entry."""

    rule: str  # rule name
    rule_version: str  # short hash of the rule's definition, so a hit tells which version made it
    tags: tuple[str, ...]  # watch item ids
    severity: str  # info / notable / urgent
    notify: tuple[str, ...]  # destination names
    matched: tuple[str, ...]  # the terms / values that made it match, as found in the text
    details: Mapping[str, Any] = field(default_factory=dict)  # extra facts (amounts, spans) kept with the hit
    cooldown: float | None = None  # seconds: no second alert for the same rule and story within it (not stored)

    @classmethod
    def maker(
        cls,
        rule: str,
        rule_version: str,
        tags: tuple[str, ...],
        severity: str,
        notify: tuple[str, ...],
        cooldown: float | None,
    ) -> Callable[[tuple[str, ...], Mapping[str, Any]], Hit]:
        """A function ``(matched, details) -> Hit`` for one rule: the same Hit as ``Hit(...)`` with these fields,
        about three times cheaper to call (the matcher builds many). It fills the instance's ``__dict__`` in one
        step instead of going through the frozen dataclass's ``__init__`` (one ``object.__setattr__`` per field):
        valid while Hit has no ``__slots__`` and no ``__post_init__``, which tests/test_matcher.py checks."""
        constant = {
            "rule": rule,
            "rule_version": rule_version,
            "tags": tags,
            "severity": severity,
            "notify": notify,
            "cooldown": cooldown,
        }
        new = object.__new__

        def make(matched: tuple[str, ...], details: Mapping[str, Any]) -> Hit:
            hit = new(cls)
            hit.__dict__.update(constant, matched=matched, details=details)
            return hit

        return make


# --- poll outcome ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PollReport:
    """What one poll of one feed did; one log line each."""

    feed: str  # feed name
    status: str  # "ok", "not-modified", "failed", "skipped" (held back: backing off, cached, disabled)
    http_status: int | None  # last HTTP status, None when no response arrived
    new_entries: int  # entries stored for the first time
    hits: int  # hits recorded
    alerts: int  # alerts queued
    duration: float  # seconds, wall time
    error: str | None = None  # why it failed, secret-free
    next_poll_at: datetime | None = None  # earliest next poll (None: disabled, or never decided)
    next_poll_reason: str | None = None  # why then: interval, max-age, expires, ttl, retry-after, backoff, gone


# --- feed health -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FeedHealth:
    """What the store knows of one feed's health: the input of the health checks (health.py)."""

    feed_id: int
    name: str
    url: str  # the URL in feeds.yaml
    moved_to: str | None = None  # the URL fetched since a permanent move, if any
    last_success_at: datetime | None = None
    last_http_status: int | None = None
    last_error: str | None = None
    consecutive_failures: int = 0
    failing_since: datetime | None = None
    gone_at: datetime | None = None  # disabled by a 410 Gone
    next_poll_at: datetime | None = None
    next_poll_reason: str | None = None
    first_entry_at: datetime | None = None  # first_seen of the first poll's entries (the backlog)
    last_entry_at: datetime | None = None  # first_seen of the newest entry
    new_entries: int = 0  # entries first seen after the first poll (the backlog does not count)
    health_alert: str | None = None  # the condition last alerted: failing / silent / disabled; None: ok
