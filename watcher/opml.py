"""OPML 2.0 (http://opml.org/spec2.opml), the format feed readers exchange subscription lists in. Pure.

Reading: an OPML file comes from another program, or from anyone, so it is parsed with expat directly and any
DOCTYPE is refused: without a DOCTYPE no entity can be declared, so neither entity expansion ("billion laughs")
nor an external entity (a local file, a URL) can happen. That is what defusedxml does for this case, in a dozen
lines and no dependency. Every ``<outline>`` with an ``xmlUrl`` is a feed, at any depth; the folders around it
and its ``category`` attribute become tags; ``isComment="true"`` marks a feed that is switched off.

Writing: one flat outline per feed, tags in ``category``, disabled feeds as comments, through ElementTree (which
escapes every attribute), so import(export(feeds)) gives the same feeds back.
"""

from __future__ import annotations

import re
import xml.parsers.expat
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime
from xml.etree import ElementTree as ET

from .errors import ConfigError, ConfigIssue
from .text import collapse_whitespace

__all__ = ["OpmlFeed", "parse_opml", "render_opml"]

MAX_BYTES = 20 * 1000 * 1000  # a subscription list of 100,000 feeds is under 20 MB
_INVALID_XML_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


@dataclass(frozen=True)
class OpmlFeed:
    """One feed found in an OPML file."""

    url: str  # the xmlUrl, as written (stripped)
    title: str  # the outline's title, else its text; plain text, may be ""
    tags: tuple[str, ...] = ()  # enclosing folders, then the category attribute's entries
    enabled: bool = True  # False for an outline marked isComment="true"
    line: int | None = None  # where the outline is, for messages


class _Refused(Exception):
    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


def _attr(attrs: dict[str, str], name: str) -> str:
    """An attribute by name, case-insensitively (exporters write xmlUrl, xmlurl and XMLURL)."""
    if name in attrs:
        return attrs[name]
    low = name.lower()
    return next((v for k, v in attrs.items() if k.lower() == low), "")


def parse_opml(data: bytes, path: str) -> list[OpmlFeed]:
    """The feeds of an OPML document. Raises ConfigError (with the file and line) when it is not OPML."""
    if len(data) > MAX_BYTES:
        raise ConfigError(ConfigIssue(path, None, f"file is over {MAX_BYTES:,} bytes", "split it into smaller files"))
    parser = xml.parsers.expat.ParserCreate()
    feeds: list[OpmlFeed] = []
    folders: list[str | None] = []  # one per open <outline>: its name when it is a folder, None for a feed
    seen: dict[str, bool] = {"opml": False, "body": False}
    depth = 0

    def refuse_doctype(*_: object) -> None:
        raise _Refused(
            "OPML with a DOCTYPE is refused (it could declare entities that expand without limit or read files)",
            "remove the <!DOCTYPE ...> declaration",
        )

    def start(name: str, attrs: dict[str, str]) -> None:
        nonlocal depth
        depth += 1
        if depth == 1:
            if name != "opml":
                raise _Refused(f"not an OPML file (the root element is <{name}>, not <opml>)", "export OPML")
            seen["opml"] = True
            return
        if name == "body" and depth == 2:
            seen["body"] = True
        if name != "outline":
            return
        url = _attr(attrs, "xmlUrl").strip()
        title = collapse_whitespace(_attr(attrs, "title") or _attr(attrs, "text"))
        if not url:
            folders.append(title or None)
            return
        folders.append(None)
        tags = [f for f in folders if f]
        for category in _attr(attrs, "category").split(","):
            tags.extend(part for part in [category.strip().strip("/")] if part)
        feeds.append(
            OpmlFeed(
                url=url,
                title=title,
                tags=tuple(dict.fromkeys(tags)),
                enabled=_attr(attrs, "isComment").strip().lower() != "true",
                line=parser.CurrentLineNumber,
            )
        )

    def end(name: str) -> None:
        nonlocal depth
        depth -= 1
        if name == "outline" and folders:
            folders.pop()

    parser.StartDoctypeDeclHandler = refuse_doctype
    parser.EntityDeclHandler = refuse_doctype
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    try:
        parser.Parse(data, True)
    except _Refused as e:
        raise ConfigError(ConfigIssue(path, parser.CurrentLineNumber, e.message, e.hint)) from None
    except xml.parsers.expat.ExpatError as e:
        raise ConfigError(
            ConfigIssue(
                path,
                e.lineno,
                f"not well-formed XML: {xml.parsers.expat.ErrorString(e.code)} (column {e.offset + 1})",
                "an OPML file is XML: check the line, or export it again",
            )
        ) from None
    if not seen["opml"]:
        raise ConfigError(ConfigIssue(path, None, "not an OPML file (empty)", "export OPML from your feed reader"))
    if not seen["body"]:
        raise ConfigError(ConfigIssue(path, None, "OPML without a <body>", "an OPML file lists its feeds in <body>"))
    return feeds


def _clean(value: str) -> str:
    """Characters XML 1.0 cannot carry at all are dropped (ElementTree escapes the rest)."""
    return _INVALID_XML_CHARS.sub("", value)


@dataclass(frozen=True)
class ExportFeed:
    """What a feed contributes to an OPML file."""

    name: str
    url: str
    tags: tuple[str, ...] = ()
    enabled: bool = True


def render_opml(feeds: Sequence[ExportFeed], *, title: str, now: datetime) -> str:
    """An OPML 2.0 document listing the feeds, one flat outline each."""
    root = ET.Element("opml", version="2.0")
    head = ET.SubElement(root, "head")
    ET.SubElement(head, "title").text = _clean(title)
    ET.SubElement(head, "dateCreated").text = format_datetime(now)
    ET.SubElement(head, "docs").text = "http://opml.org/spec2.opml"
    body = ET.SubElement(root, "body")
    for f in feeds:
        attrs = {"type": "rss", "text": _clean(f.name), "title": _clean(f.name), "xmlUrl": _clean(f.url)}
        if f.tags:
            attrs["category"] = _clean(",".join("/" + t.replace(",", " ") for t in f.tags))
        if not f.enabled:
            attrs["isComment"] = "true"
        ET.SubElement(body, "outline", attrs)
    ET.indent(root, space="  ")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
