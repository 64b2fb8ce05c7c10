"""JSON Feed (https://jsonfeed.org) 1.0 and 1.1, which feedparser 6.0.x cannot read.

feedparser 6.0.14 returns ``bozo=1`` and no entries for a JSON Feed (a JSON parser exists only on its
develop branch), so the parse stage tries :func:`parse_json_feed` first and falls back to feedparser when it
returns None. The format has few fields, so a small hand-written reader is cheaper than a dependency.

JSON from the wild has wrong types anywhere (a number as title, ``items`` as an object, an item that is a
string), so every field is read through a type check: a bad field counts as missing, a bad item is skipped,
and the only "failure" is returning None for a body that is not a JSON Feed at all.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

from .dates import parse_date
from .models import Entry, ParsedFeed
from .text import collapse_whitespace, html_to_text

__all__ = ["MAX_ITEMS", "parse_json_feed"]

MAX_ITEMS = 10_000  # items beyond this are ignored: no real feed has more, and each costs an HTML parse
_VERSION_PREFIX = "https://jsonfeed.org/version/"
_TITLE_CHARS = 80  # length of a title made up from the text when an item has none
_MAX_KEY = 512  # longer ids are hashed: the key is a database column and an identity, not content
_MAX_DATE = 64

# Lone surrogates are legal in JSON ("\ud800") but not encodable as UTF-8: they would fail later, in the
# database or a notifier, far from the cause. Replace them here.
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_URL_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _str(value: object) -> str:
    """The value if it is a string (lone surrogates replaced), else "": a wrong type counts as missing."""
    if not isinstance(value, str):
        return ""
    return _SURROGATE.sub("\ufffd", value)


def _version(value: object) -> str | None:
    """feedparser-style version name, or None when this is not a JSON Feed.

    Anything under the version prefix other than 1 / 1.0 is read as 1.1, the newest version known: later
    versions are meant to stay readable by 1.1 readers.
    """
    if not isinstance(value, str) or not value.startswith(_VERSION_PREFIX):
        return None
    number = value[len(_VERSION_PREFIX) :].strip().rstrip("/")
    return "json10" if number in ("1", "1.0") else "json11"


def _link(value: object, base: str | None) -> str:
    """An absolute http(s) URL, resolved against ``base``, or "".

    Other schemes (``javascript:``, ``data:``) are dropped, not kept: the link ends up clickable in an alert.
    """
    url = _str(value).strip()
    if not url or _URL_CONTROL.search(url):
        return ""
    try:
        resolved = urljoin(base, url) if base else url
        parts = urlsplit(resolved)
    except ValueError:  # e.g. "http://[::1" (bad IPv6 literal)
        return ""
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return ""
    return resolved.replace(" ", "%20")


def _id(value: object) -> str:
    """The item id as a string. The spec says a numeric id must be coerced to a string; a bool is junk."""
    if isinstance(value, bool):
        return ""
    if isinstance(value, (int, float)):
        return str(value)
    return _str(value).strip()


def _author(obj: dict[str, Any]) -> str:
    """Name of the first author: "authors" (1.1) first, then "author" (1.0); bare strings are tolerated."""
    authors = obj.get("authors")
    author = obj.get("author")
    candidates = [*authors, author] if isinstance(authors, list) else [authors, author]
    for candidate in candidates:
        name = _str(candidate.get("name")) if isinstance(candidate, dict) else _str(candidate)
        name = collapse_whitespace(name)
        if name:
            return name
    return ""


def _tags(value: object) -> tuple[str, ...]:
    """String tags, whitespace collapsed, empty and duplicate ones dropped, order kept."""
    if not isinstance(value, list):
        return ()
    tags = (collapse_whitespace(_str(tag)) for tag in value)
    return tuple(dict.fromkeys(tag for tag in tags if tag))


def _date(value: object) -> datetime | None:
    """RFC 3339 ``date_published`` as an aware UTC datetime, or None when missing or unreadable.

    Wild feeds also put a date without offset (read as UTC, as feedparser does), a Japanese date (see
    :mod:`watcher.dates`) or an RFC 822 date here; those are accepted too.
    """
    text = _str(value).strip()
    if not text or len(text) > _MAX_DATE:
        return None
    result: datetime | None
    try:
        result = datetime.fromisoformat(text)
    except ValueError:
        result = parse_date(text)
        if result is None:
            try:
                result = email.utils.parsedate_to_datetime(text)
            except (TypeError, ValueError, IndexError, OverflowError):
                return None
    if result.tzinfo is None or result.utcoffset() is None:
        result = result.replace(tzinfo=UTC)
    try:
        return result.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00
        return None


def _entry(item: object, base: str | None, feed_author: str) -> Entry | None:
    """One item as an Entry, or None when it is not an object or has nothing to identify it by."""
    if not isinstance(item, dict):
        return None
    title = collapse_whitespace(_str(item.get("title")))
    summary = collapse_whitespace(_str(item.get("summary")))
    text = collapse_whitespace(_str(item.get("content_text")))
    html = html_to_text(_str(item.get("content_html")))
    content = html if len(html) > len(text) else text  # the model keeps the longest content block
    link = _link(item.get("url"), base) or _link(item.get("external_url"), base)

    key = _id(item.get("id")) or link
    if not key:
        body = content or summary
        if not (title or body):
            return None  # nothing to identify, nothing to show
        key = hashlib.sha256(f"{title}\n{body}".encode()).hexdigest()
    elif len(key) > _MAX_KEY:
        key = hashlib.sha256(key.encode()).hexdigest()

    return Entry(
        key=key,
        title=title or (content or summary)[:_TITLE_CHARS].rstrip(),
        link=link,
        summary=summary,
        content=content,
        author=_author(item) or feed_author,
        categories=_tags(item.get("tags")),
        published=_date(item.get("date_published")),
    )


def parse_json_feed(body: bytes, *, base_url: str | None = None) -> ParsedFeed | None:
    """Read a JSON Feed 1.0/1.1 body; None when it is not one (not JSON, not an object, no jsonfeed version).

    ``base_url`` (the URL the body came from) resolves relative item URLs; without it, the feed's
    ``home_page_url`` is used. ``warning`` is set, as feedparser's bozo would be, when the feed was only
    partly usable: ``items`` missing or not a list, items skipped, or items beyond :data:`MAX_ITEMS`.
    Never raises.
    """
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError, TypeError):  # not JSON, bad encoding, nesting bomb, not bytes
        return None
    if not isinstance(doc, dict):
        return None
    version = _version(doc.get("version"))
    if version is None:
        return None

    base = base_url or _link(doc.get("home_page_url"), None) or None
    feed_author = _author(doc)
    items = doc.get("items")
    problems: list[str] = []
    if not isinstance(items, list):
        problems.append('"items" is missing or not a list')
        items = []
    if len(items) > MAX_ITEMS:
        problems.append(f"{len(items) - MAX_ITEMS} items beyond the first {MAX_ITEMS} ignored")

    entries: list[Entry] = []
    for item in items[:MAX_ITEMS]:
        entry = _entry(item, base, feed_author)
        if entry is not None:
            entries.append(entry)
    skipped = min(len(items), MAX_ITEMS) - len(entries)
    if skipped:
        problems.append(f"{skipped} unusable items skipped")

    return ParsedFeed(
        title=collapse_whitespace(_str(doc.get("title"))),
        version=version,
        entries=tuple(entries),
        warning="; ".join(problems) or None,
    )
