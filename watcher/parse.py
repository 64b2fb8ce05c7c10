"""Bytes -> ParsedFeed: feedparser (RSS, Atom, RDF) or JSON Feed, normalised to plain-text entries. Pure.

Before feedparser sees the bytes, DOCTYPE internal subsets and ENTITY declarations are removed: feedparser's
loose fallback parser expands a "quadratic blowup" entity without limit (110 KB in, 1 GB out, measured), and
real feeds never declare entities. Bytes go in wrapped in BytesIO: raw bytes that look like a path are opened
from disk by feedparser.
"""

from __future__ import annotations

import calendar
import contextlib
import dataclasses
import hashlib
import io
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

import feedparser

from . import dates
from .errors import ParseError
from .jsonfeed import parse_json_feed
from .models import Entry, ParsedFeed
from .text import html_to_text

dates.install()

_DOCTYPE_SUBSET = re.compile(rb"<!DOCTYPE[^>\[]*\[.*?\]\s*>", re.DOTALL | re.IGNORECASE)
_ENTITY_DECL = re.compile(rb"<!ENTITY\b[^>]*>", re.IGNORECASE)
_HEAD = 64 * 1024
_MAX_TITLE = 1000
_MAX_TEXT = 20_000


def neutralise_entities(body: bytes) -> bytes:
    """Drop DOCTYPE internal subsets and ENTITY declarations from the document's head."""
    head, rest = body[:_HEAD], body[_HEAD:]
    if b"<!" not in head:
        return body
    head = _DOCTYPE_SUBSET.sub(b"", head)
    head = _ENTITY_DECL.sub(b"", head)
    return head + rest


def _looks_like_json(body: bytes) -> bool:
    return body.lstrip()[:1] in (b"{",)


def _looks_like_html(body: bytes, content_type: str) -> bool:
    head = body[:2048].lstrip().lower()
    return "html" in content_type.lower() or head.startswith(b"<!doctype html") or head.startswith(b"<html")


def _to_datetime(st: Any) -> datetime | None:
    if not st:
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(st), tz=UTC)
    except (OverflowError, ValueError, TypeError):
        return None


def canonical_link(link: str) -> str:
    """A link with its scheme and host lower-cased and its fragment dropped, for identity."""
    try:
        p = urlsplit(link.strip())
    except ValueError:
        return link.strip()
    return urlunsplit((p.scheme.lower(), p.netloc.lower(), p.path or "/", p.query, ""))


def entry_key(guid: str, link: str, title: str, summary: str, content: str) -> str:
    """Stable identity: the guid, else the canonical link, else a hash of the text."""
    if guid.strip():
        return "id:" + guid.strip()[:500]
    if link.strip():
        return "link:" + canonical_link(link)[:500]
    digest = hashlib.sha256("\x1f".join((title, summary, content)).encode("utf-8", "replace")).hexdigest()
    return "sha256:" + digest[:40]


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[:n].rstrip() + "…"


def _entry(e: Mapping[str, Any], now: datetime, base: str) -> Entry:
    title = _clip(html_to_text(str(e.get("title") or "")), _MAX_TITLE)
    summary = _clip(html_to_text(str(e.get("summary") or "")), _MAX_TEXT)
    contents = [html_to_text(str(c.get("value") or "")) for c in (e.get("content") or []) if isinstance(c, Mapping)]
    content = _clip(max(contents, key=len), _MAX_TEXT) if contents else ""
    if content == summary:
        content = ""
    link = str(e.get("link") or "").strip()
    if link and base:
        with contextlib.suppress(ValueError):  # a malformed link stays as written
            link = urljoin(base, link)
    guid = str(e.get("id") or "")
    published = _to_datetime(e.get("published_parsed") or e.get("updated_parsed"))
    categories = tuple(
        str(t.get("term")).strip() for t in (e.get("tags") or []) if isinstance(t, Mapping) and t.get("term")
    )
    return Entry(
        key=entry_key(guid, link, title, summary, content),
        title=title,
        link=link,
        summary=summary,
        content=content,
        author=html_to_text(str(e.get("author") or "")),
        categories=categories[:50],
        published=dates.resolve_published(published, now),
    )


def parse(body: bytes, headers: Mapping[str, str] | None = None, *, url: str = "", now: datetime) -> ParsedFeed:
    """Parse one response body. Raises ParseError when it is not a feed (HTML page, garbage)."""
    headers = {k.lower(): v for k, v in (headers or {}).items()}
    ctype = headers.get("content-type", "")
    if _looks_like_json(body) or "json" in ctype:
        feed = parse_json_feed(body, base_url=url or None)
        if feed is not None:
            json_entries = tuple(
                dataclasses.replace(
                    e,
                    title=_clip(e.title, _MAX_TITLE),
                    summary=_clip(e.summary, _MAX_TEXT),
                    content=_clip(e.content, _MAX_TEXT),
                    published=dates.resolve_published(e.published, now),
                )
                for e in feed.entries
            )
            return _dedupe(dataclasses.replace(feed, entries=json_entries), now)
        if _looks_like_json(body):
            raise ParseError("JSON that is not a JSON Feed (no https://jsonfeed.org/version/ in 'version')")
    # No content-location: feedparser would resolve relative guids against it, and a feed that moves would
    # then change every entry's key (and alert its backlog again). Links are resolved below instead.
    response_headers = {"content-type": ctype or "application/xml"}
    if "content-language" in headers:
        response_headers["content-language"] = headers["content-language"]
    d = feedparser.parse(
        io.BytesIO(neutralise_entities(body)),
        response_headers=response_headers,
        sanitize_html=True,
        resolve_relative_uris=False,
    )
    version = d.get("version") or ""
    entries = d.get("entries") or []
    warning = None
    if d.get("bozo"):
        exc = d.get("bozo_exception")
        warning = f"{type(exc).__name__}: {exc}" if exc is not None else "ill-formed feed"
    if not version and not entries:
        if _looks_like_html(body, ctype):
            raise ParseError("an HTML page, not a feed (find the page's RSS/Atom link and use that URL)")
        if not body.strip():
            raise ParseError("empty response body")
        raise ParseError(f"not a feed: {warning or 'no RSS/Atom/JSON Feed structure found'}")
    title = html_to_text(str(d.get("feed", {}).get("title") or ""))
    parsed = ParsedFeed(
        title=_clip(title, _MAX_TITLE),
        version=version or "unknown",
        entries=tuple(_entry(e, now, url) for e in entries),
        warning=warning,
        ttl=feed_ttl(d.get("feed", {}).get("ttl")),
    )
    return _dedupe(parsed, now)


def feed_ttl(value: object) -> float | None:
    """RSS ``<ttl>`` (minutes to cache the channel) in seconds; None when absent or not a positive number."""
    text = str(value or "").strip()
    if not text.isdigit() or int(text) <= 0:
        return None
    return int(text) * 60.0


def _dedupe(feed: ParsedFeed, now: datetime) -> ParsedFeed:
    """Keep the first entry of each key (feeds sometimes repeat an item)."""
    seen: set[str] = set()
    out = []
    for e in feed.entries:
        if e.key not in seen:
            seen.add(e.key)
            out.append(e)
    if len(out) == len(feed.entries):
        return feed
    return dataclasses.replace(feed, entries=tuple(out))
