"""Turn feed HTML into the plain text that rules match and alerts show.

Feeds carry HTML in their content, and alerts go to places (Slack, email, a terminal) where markup is either
noise or a hazard. So everything watcher keeps is plain text: tags removed, entities decoded, whitespace
collapsed. The output is *text*, not safe HTML: a decoded ``&lt;b&gt;`` is the literal characters ``<b>``,
and whoever renders it must escape it for their medium.
"""

from __future__ import annotations

import re
from html import unescape
from html.parser import HTMLParser
from itertools import chain

__all__ = ["collapse_whitespace", "html_to_text"]

# Elements whose content is never readable text. script and style are what the brief requires; template and
# noscript hold markup or "please enable JavaScript" boilerplate that would only pollute matching.
_SKIP = frozenset({"script", "style", "template", "noscript"})

# Elements that separate words. Inline elements (a, b, span...) must *not* add a space, or "un<b>bel</b>ievable"
# and Japanese, which has no spaces, would be split in the middle of a word.
_BLOCK = frozenset(
    {
        "address", "article", "aside", "blockquote", "br", "caption", "dd", "details", "dialog", "div", "dl",
        "dt", "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6",
        "header", "hr", "li", "main", "nav", "ol", "option", "p", "pre", "section", "summary", "table",
        "tbody", "td", "tfoot", "th", "thead", "tr", "ul",
    }
)  # fmt: skip

# C0/C1 control characters (other than the whitespace ones str.split already handles) and zero-width
# characters: they are invisible, break term matching and can hide text in a terminal.
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f\u200b-\u200d\u2060\ufeff]")

# An unfinished construct left at the end of the input: "<a href=...", "</", "<!-- ...", "<?php".
# Browsers drop these (eof-in-tag), and keeping them would leak markup into the text.
_UNFINISHED = re.compile(r"<[A-Za-z/!?]")
_TAG = re.compile(r"<[A-Za-z/!?][^<>]*>")

# The fast path: a start or end tag in its plainest form (a name of letters and digits, attributes whose values
# hold no "<" or ">"). Sanitised feed HTML is almost all made of these; anything else goes to the parser.
_SIMPLE_TAG = re.compile(
    r"</?([a-zA-Z][a-zA-Z0-9]*)"
    r"(?:\s+[a-zA-Z_:][-a-zA-Z0-9_:.]*(?:\s*=\s*(?:\"[^\"<>]*\"|'[^'<>]*'|[^\s\"'=<>`]+))?)*\s*/?>"
)
# Elements whose content the parser treats specially (raw text, or skipped): never on the fast path.
_NOT_SIMPLE = _SKIP | {"title", "textarea", "xmp", "iframe", "noembed", "noframes", "plaintext", "svg", "math"}


def collapse_whitespace(s: str) -> str:
    """Remove control characters and turn every run of whitespace (including U+3000) into one space.

    Feed text is indented, wrapped and padded arbitrarily; rules and alerts want one clean line.
    """
    joined = " ".join(s.split())
    if joined.isprintable():  # the common case, checked in C: no control or format character is left
        return joined
    return " ".join(_CONTROL.sub(" ", joined).split())


class _TextExtractor(HTMLParser):
    """Collects the character data of an HTML fragment, skipping unreadable elements."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self.skip_depth += 1
        elif tag in _BLOCK:
            self.parts.append(" ")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        # Browsers ignore the "/" of "<script/>" and treat what follows as script, so do the same: open only.
        if tag in _SKIP:
            self.skip_depth += 1
        elif tag in _BLOCK:
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self.skip_depth = max(0, self.skip_depth - 1)
        elif tag in _BLOCK:
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if not self.skip_depth:
            self.parts.append(data)

    # Comments, declarations (<!DOCTYPE>, <![CDATA[...]]>) and processing instructions are not text:
    # HTMLParser's default handlers already drop them.

    def finish(self) -> str:
        """Flush the parser, dropping a trailing unfinished tag instead of emitting it as text."""
        match = _UNFINISHED.search(self.rawdata)
        if match:
            self.rawdata = self.rawdata[: match.start()]
        self.close()
        return "".join(self.parts)


def _simple_html_to_text(s: str) -> str | None:
    """html_to_text for fragments made only of text and simple tags, with one regex; None for anything else.

    Gives exactly what the parser gives (a property test holds them equal) at a seventh of the cost: summaries
    are most of the text watcher reads, and re-parsing them with html.parser cost a fifth of a poll.
    """
    parts = _SIMPLE_TAG.split(s)  # text, tag name, text, tag name, ..., text
    texts = parts[0::2]
    if "<" in "".join(texts):  # a "<" that opens no simple tag: a comment, a stray "<", an odd attribute
        return None
    names = [n.lower() for n in parts[1::2]]
    if not _NOT_SIMPLE.isdisjoint(names):
        return None
    if "&" in s:
        texts = [unescape(t) if "&" in t else t for t in texts]  # run by run, as the parser decodes them
    # Block elements separate words, inline ones join them.
    seps = [" " if n in _BLOCK else "" for n in names]
    seps.append("")
    return collapse_whitespace("".join(chain.from_iterable(zip(texts, seps, strict=True))))


def html_to_text(s: str) -> str:
    """Plain text of an HTML fragment: tags removed, script/style content dropped, entities decoded.

    Never raises on malformed HTML (html.parser is lenient by design) and never lets markup through: an
    unclosed ``<script>`` swallows the rest of the input, as it would in a browser, and a tag cut off by
    truncation at the end is dropped. Whitespace is collapsed, so the result is one line.
    """
    if "<" not in s and "&" not in s:  # the common case for titles; skip the parser entirely
        return collapse_whitespace(s)
    simple = _simple_html_to_text(s)
    return simple if simple is not None else parsed_html_to_text(s)


def parsed_html_to_text(s: str) -> str:
    """html_to_text through html.parser, for any input (the reference the fast path is checked against)."""
    parser = _TextExtractor()
    parser.feed(s)
    text = parser.finish()
    if "&" not in s:
        # Stray "<" and ">" the parser kept as data can sit next to each other once a tag between them is
        # gone ("<<?>?>" -> "<?>"). Without entities in the input, nothing tag-shaped is real text: drop it.
        while (cleaned := _TAG.sub("", text)) != text:
            text = cleaned
    return collapse_whitespace(text)
