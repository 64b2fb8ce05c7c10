"""The feeds a web page advertises with ``<link rel="alternate" type="..." href="...">``. Pure.

Used twice: by feed discovery (``watcher feeds discover URL``, discover.py), and by the parse stage when a
feed URL turns out to be an HTML page, so the error can say which URL to use instead ("an HTML page, not a
feed; it advertises: ...").

Links are resolved as a browser would: against the document's first ``<base href>`` (itself resolved against
the page URL), else the page URL, which must be the *final* URL after redirects. Only http(s) results are
kept: a page is untrusted and may advertise ``javascript:`` or ``file:`` URLs.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

from .text import collapse_whitespace

__all__ = ["FEED_TYPES", "FeedLink", "feed_links", "suggestion"]

FEED_TYPES = {
    "application/rss+xml": "rss",
    "application/atom+xml": "atom",
    "application/feed+json": "json",
    "application/rdf+xml": "rdf",
}
"""Advertised media types that are feeds, with a short name. Plain application/json is left out: on WordPress
sites it is the REST API view of the page, not a JSON Feed."""

_MAX_SCAN = 1024 * 1024  # advertised links are in <head>; a huge page is not read to its end
_MAX_LINKS = 50


@dataclass(frozen=True)
class FeedLink:
    """One feed a page advertises."""

    url: str  # absolute http(s) URL
    kind: str  # rss, atom, json or rdf (from the advertised type, or the parsed feed's version)
    title: str = ""  # the link's title attribute (or the feed's title), plain text
    found: str = "advertised"  # advertised (a <link> of the page), itself (the URL is a feed), common-path (probed)


class _LinkParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.base: str | None = None
        self.found: list[tuple[str, str, str]] = []  # (href, kind, title), unresolved

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "base" and self.base is None:
            href = dict(attrs).get("href")
            if href:
                self.base = href.strip()
        elif tag == "link" and len(self.found) < _MAX_LINKS:
            a = {k: (v or "") for k, v in attrs}
            rels = a.get("rel", "").lower().split()
            kind = FEED_TYPES.get(a.get("type", "").split(";", 1)[0].strip().lower())
            href = a.get("href", "").strip()
            if kind and href and ("alternate" in rels or "feed" in rels):
                self.found.append((href, kind, a.get("title", "")))


def feed_links(html: str, page_url: str) -> list[FeedLink]:
    """The feeds advertised by an HTML document fetched from ``page_url``, in document order, without repeats."""
    parser = _LinkParser()
    with contextlib.suppress(AssertionError):  # html.parser asserts on some malformed declarations
        parser.feed(html[:_MAX_SCAN])
        parser.close()
    base = page_url
    if parser.base:
        with contextlib.suppress(ValueError):
            base = urljoin(page_url, parser.base)
    out: dict[str, FeedLink] = {}
    for href, kind, title in parser.found:
        try:
            url = urljoin(base, href)
            scheme = urlsplit(url).scheme.lower()
        except ValueError:
            continue
        if scheme in ("http", "https") and url not in out:
            out[url] = FeedLink(url, kind, collapse_whitespace(title)[:200])
    return list(out.values())


def suggestion(links: list[FeedLink]) -> str:
    """What the error for an HTML page says after "an HTML page, not a feed"."""
    if not links:
        return (
            '; it advertises no feed (no <link rel="alternate"> of an RSS/Atom/JSON Feed type): '
            "find the site's feed URL (watcher feeds discover URL also tries the usual paths)"
        )
    shown = ", ".join(link.url for link in links[:5])
    more = f" and {len(links) - 5} more" if len(links) > 5 else ""
    return f"; it advertises: {shown}{more} (use one of them as the feed's url)"
