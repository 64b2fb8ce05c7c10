"""Feed discovery: given a URL, the feeds it is or advertises; the usual paths tried when it advertises none.

The one I/O here goes through the injected :class:`~watcher.fetch.Fetcher` (the same limits, deadlines and
User-Agent as polling). A guessed path is listed only when fetching it gives a feed that parses: a site's
``/feed`` that answers with its home page must not be suggested.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urljoin

from .charset import decode
from .errors import ParseError
from .feedlinks import FeedLink, feed_links
from .fetch import Fetcher, Request
from .models import Failed, Fetched, ParsedFeed
from .parse import parse

__all__ = ["COMMON_PATHS", "Discovery", "find_feeds"]

COMMON_PATHS = ("/feed", "/rss", "/feed.xml", "/rss.xml", "/atom.xml", "/index.xml", "/feeds/posts/default")
"""Where sites without a <link rel="alternate"> usually keep their feed (WordPress, Hugo, Jekyll, Blogger...)."""


@dataclass(frozen=True)
class Discovery:
    """What a URL turned out to offer."""

    url: str  # the page's final URL, after redirects
    feeds: tuple[FeedLink, ...]  # itself, or what it advertises, or what the common paths gave
    error: str | None = None  # why the URL itself could not be fetched
    probed: tuple[str, ...] = ()  # the common-path URLs tried (none when the page advertised feeds)


def kind_of(version: str) -> str:
    """rss, atom, rdf or json from feedparser's (or jsonfeed's) version string."""
    if version.startswith("atom"):
        return "atom"
    if version.startswith("json"):
        return "json"
    if version in ("rss090", "rss10"):
        return "rdf"
    return "rss" if version.startswith("rss") else version


def _as_feed(result: Fetched, now: datetime) -> ParsedFeed | None:
    try:
        return parse(result.body, result.headers, url=result.url, now=now)
    except ParseError:
        return None


async def find_feeds(
    fetcher: Fetcher, url: str, *, now: datetime, probe: bool = True, timeout: float = 10.0, deadline: float = 30.0
) -> Discovery:
    """The feeds at ``url``: the URL itself when it is a feed, else the ones its page advertises, else (with
    ``probe``) the common paths that really serve a feed."""
    result = await fetcher.fetch(Request(url, timeout=timeout, deadline=deadline))
    if not isinstance(result, Fetched):
        reason = result.reason if isinstance(result, Failed) else "unexpected 304"
        return Discovery(url, (), reason)
    feed = _as_feed(result, now)
    if feed is not None:
        return Discovery(result.url, (FeedLink(result.url, kind_of(feed.version), feed.title, "itself"),))
    text = decode(result.body, result.headers.get("content-type", "")).text
    links = feed_links(text, result.url)
    if links or not probe:
        return Discovery(result.url, tuple(links))
    candidates = list(dict.fromkeys(urljoin(result.url, p) for p in COMMON_PATHS))

    async def verify(candidate: str) -> FeedLink | None:
        got = await fetcher.fetch(Request(candidate, timeout=timeout, deadline=deadline))
        if not isinstance(got, Fetched):
            return None
        parsed = _as_feed(got, now)
        return FeedLink(got.url, kind_of(parsed.version), parsed.title, "common-path") if parsed else None

    found = [f for f in await asyncio.gather(*(verify(c) for c in candidates)) if f is not None]
    unique = {f.url: f for f in reversed(found)}  # two paths redirecting to one feed: list it once, first path
    return Discovery(result.url, tuple(reversed(unique.values())), probed=tuple(candidates))
