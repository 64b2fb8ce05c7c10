"""Bytes -> ParsedFeed: feedparser (RSS, Atom, RDF) or JSON Feed, normalised to plain-text entries. Pure.

Before feedparser sees the bytes, DOCTYPE internal subsets and ENTITY declarations are removed: feedparser's
loose fallback parser expands a "quadratic blowup" entity without limit (110 KB in, 1 GB out, measured), and
real feeds never declare entities. Bytes go in wrapped in BytesIO: raw bytes that look like a path are opened
from disk by feedparser.
"""

from __future__ import annotations

import calendar
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
from .charset import to_utf8_xml
from .errors import ParseError
from .feedlinks import feed_links, suggestion
from .jsonfeed import parse_json_feed
from .models import Entry, ParsedFeed
from .text import html_to_text

dates.install()

_DOCTYPE_WORD = re.compile(rb"<!DOCTYPE", re.IGNORECASE)
_SUBSET_END = re.compile(rb"\]\s*>")
_ENTITY_WORD = re.compile(rb"<!ENTITY", re.IGNORECASE)
_FIRST_ELEMENT = re.compile(rb"<\w")
_MAX_TITLE = 1000
_MAX_TEXT = 20_000


def neutralise_entities(body: bytes) -> bytes:
    """Drop the DOCTYPE internal subset and every ENTITY declaration from the document's prolog.

    The prolog is everything before the root element, found as feedparser finds it (the first ``<`` followed
    by a word character), so a DOCTYPE pushed far down by a long comment is caught too: feedparser reads its
    "safe" entities from that whole prolog, however long. Every step is one linear scan, so a prolog made of
    thousands of unterminated declarations costs no more than its length.
    """
    start = _FIRST_ELEMENT.search(body)
    end = start.start() if start else len(body)
    head = body[:end]
    if b"<!" not in head:
        return body
    doctype = _DOCTYPE_WORD.search(head)
    if doctype is not None:
        # Only one DOCTYPE is allowed; later ones lose their keyword (feedparser's own regex rescans each).
        tail = _DOCTYPE_WORD.sub(b"", head[doctype.end() :])
        bracket, gt = tail.find(b"["), tail.find(b">")
        if bracket != -1 and (gt == -1 or bracket < gt):  # an internal subset: drop the whole declaration
            close = _SUBSET_END.search(tail, bracket)
            head = head[: doctype.start()] + (tail[close.end() :] if close else b"")
        else:
            head = head[: doctype.end()] + tail
    head = _ENTITY_WORD.sub(b"", head)  # declarations outside a subset (invalid anyway) lose their keyword
    return head + body[end:]


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


def _safe_link(link: str, base: str) -> str:
    """The entry's link made absolute; "" unless it is http(s) (or relative without a base).

    Alerts show the link and chat clients make it clickable: a feed must not get a ``javascript:`` or
    ``data:`` URL in front of the analyst.
    """
    link = link.strip()
    if not link:
        return ""
    if link.startswith(("https://", "http://")):  # already absolute: nearly every link, and urljoin is not free
        return link
    try:
        if base:
            link = urljoin(base, link)
        scheme = urlsplit(link).scheme.lower()
    except ValueError:  # a malformed http(s) link stays as written (its key must not change)
        return link if link.lower().startswith(("http://", "https://")) else ""
    return link if scheme in ("http", "https", "") else ""


def _entry(e: dict[str, Any], now: datetime, base: str) -> Entry:
    # dict.get, not FeedParserDict.get: the keys read here are stored under these names, and feedparser's
    # alias lookup costs ~10 us an entry (a feed's entries are read 50 at a time, thousands of feeds a cycle).
    get = dict.get
    title = _clip(html_to_text(str(get(e, "title") or "")), _MAX_TITLE)
    summary = _clip(html_to_text(str(get(e, "summary") or "")), _MAX_TEXT)
    contents = [html_to_text(str(c.get("value") or "")) for c in (get(e, "content") or []) if isinstance(c, Mapping)]
    content = _clip(max(contents, key=len), _MAX_TEXT) if contents else ""
    if content == summary:
        content = ""
    link = _safe_link(str(get(e, "link") or ""), base)
    guid = str(get(e, "id") or "")
    published = _to_datetime(get(e, "published_parsed") or get(e, "updated_parsed"))
    categories = tuple(
        str(t.get("term")).strip() for t in (get(e, "tags") or []) if isinstance(t, Mapping) and t.get("term")
    )
    return Entry(
        key=entry_key(guid, link, title, summary, content),
        title=title,
        link=link,
        summary=summary,
        content=content,
        author=html_to_text(str(get(e, "author") or "")),
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
    # The encoding is decided here (charset.py: declarations checked against the bytes, then UTF-8, then a
    # Japanese guess) and feedparser gets UTF-8 saying it is UTF-8, so its own fallback to windows-1252 never
    # turns a Japanese feed into mojibake.
    xml, xml_ctype, decoded = to_utf8_xml(body, ctype)
    # No content-location: feedparser would resolve relative guids against it, and a feed that moves would
    # then change every entry's key (and alert its backlog again). Links are resolved below instead.
    response_headers = {"content-type": xml_ctype}
    if "content-language" in headers:
        response_headers["content-language"] = headers["content-language"]
    d = feedparser.parse(
        io.BytesIO(neutralise_entities(xml)),
        response_headers=response_headers,
        sanitize_html=True,
        resolve_relative_uris=False,
    )
    version = d.get("version") or ""
    entries = d.get("entries") or []
    warnings = [decoded.warning] if decoded.warning else []
    if d.get("bozo"):
        exc = d.get("bozo_exception")
        warnings.append(f"{type(exc).__name__}: {exc}" if exc is not None else "ill-formed feed")
    warning = "; ".join(warnings) or None
    if not version and not entries:
        if _looks_like_html(xml, ctype):
            raise ParseError("an HTML page, not a feed" + suggestion(feed_links(decoded.text, url)))
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
