"""Adding feeds to feeds.yaml without disturbing what the user wrote there.

feeds.yaml is the user's file: hand-written comments, sections, alignment. ruamel.yaml's round-trip mode keeps
comments and quoting; the indentation it writes is a global setting, so it is measured from the file first
(sequence dash offset and mapping indent), and the result is checked line by line: existing lines must come out
unchanged, new entries appended at the end of the ``feeds:`` list. The new text is validated with the same
loader ``watcher check`` uses, then replaces the file atomically (a crash leaves the old file or the new one).
"""

from __future__ import annotations

import difflib
import io
import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from .config import _feed_name_from_url, load_feeds
from .errors import ConfigError, ConfigIssue

__all__ = ["AddResult", "NewFeed", "add_feeds", "same_url"]

_SEQ_ITEM = re.compile(r"^( *)- +(?=\S)")
_KEY_LINE = re.compile(r"^( *)[^\s#-][^:#]*:(\s|$)")


@dataclass(frozen=True)
class NewFeed:
    """A feed to add."""

    url: str
    title: str = ""  # becomes the name (made unique); the URL gives one when empty
    tags: tuple[str, ...] = ()
    enabled: bool = True
    origin: str = ""  # where it came from, for messages ("subs.opml:12")


@dataclass(frozen=True)
class AddResult:
    """What add_feeds did."""

    added: tuple[tuple[str, NewFeed], ...]  # (the name given, the feed)
    skipped: tuple[tuple[NewFeed, str], ...]  # (the feed, why: "already in feeds.yaml as 'x'"...)
    relaid_lines: int = 0  # existing lines the YAML writer could not keep byte for byte (0 normally)


def same_url(url: str) -> str:
    """The form two URLs are compared in: scheme and host lower-cased, fragment and a trailing slash dropped."""
    try:
        p = urlsplit(url.strip())
    except ValueError:
        return url.strip()
    return urlunsplit((p.scheme.lower(), p.netloc.lower(), p.path.rstrip("/"), p.query, ""))


def _slug(title: str) -> str:
    """A feed name from a title: lower case, words joined by '-', Japanese kept as it is."""
    return re.sub(r"[^\w.]+", "-", title.lower()).strip("-._")[:60]


def _unique(base: str, taken: set[str]) -> str:
    name, n = base, 2
    while name in taken:
        name, n = f"{base}-{n}", n + 1
    taken.add(name)
    return name


def _indentation(text: str) -> tuple[int, int, int]:
    """(mapping indent, sequence indent, dash offset) as the file writes them; the house style when unknown."""
    mapping, sequence, offset = 2, 4, 2
    lines = text.splitlines()
    for line in lines:
        m = _SEQ_ITEM.match(line)
        if m:
            offset, sequence = len(m.group(1)), len(m.group(0))
            break
    for i, line in enumerate(lines[:-1]):
        if re.match(r"^[^\s#-][^:#]*:\s*(#.*)?$", line):  # a top-level key opening a block
            nxt = next((x for x in lines[i + 1 :] if x.strip() and not x.lstrip().startswith("#")), "")
            m = _KEY_LINE.match(nxt)
            if m and len(m.group(1)) > 0:
                mapping = len(m.group(1))
                break
    return mapping, max(sequence, offset + 2), offset


def _yaml(text: str) -> YAML:
    y = YAML(typ="rt")
    y.width = 4096  # never re-wrap long URLs
    y.preserve_quotes = True
    mapping, sequence, offset = _indentation(text)
    y.indent(mapping=mapping, sequence=sequence, offset=offset)
    return y


def _entry(name: str, feed: NewFeed) -> CommentedMap:
    m = CommentedMap()
    m["name"] = name
    m["url"] = feed.url
    if feed.tags:
        tags = CommentedSeq(list(feed.tags))
        tags.fa.set_flow_style()
        m["tags"] = tags
    if not feed.enabled:
        m["enabled"] = False
    return m


def add_feeds(path: str | os.PathLike[str], new: Sequence[NewFeed]) -> AddResult:
    """Append ``new`` to the feeds list of the feeds.yaml at ``path`` (created when missing).

    A feed whose URL is already there (or earlier in ``new``) is skipped and reported; so is one that is not
    http(s). Raises ConfigError when the file is invalid before the edit (fix it first) or would be after it.
    """
    p = Path(path)
    text = p.read_text(encoding="utf-8") if p.exists() else ""
    if text.strip():
        load_feeds(p)  # refuse to edit a file that is already invalid: its errors come out with their lines
    y = _yaml(text)
    doc: Any = y.load(text) if text.strip() else None
    if doc is None:
        doc = CommentedMap()
    old_feeds = doc.get("feeds")
    feeds = old_feeds if isinstance(old_feeds, CommentedSeq) else CommentedSeq()
    existing = {same_url(str(f.get("url", ""))): str(f.get("name") or "") for f in feeds if isinstance(f, dict)}
    taken = {str(f.get("name")) for f in feeds if isinstance(f, dict) and f.get("name")}
    taken |= {_feed_name_from_url(str(f.get("url", ""))) for f in feeds if isinstance(f, dict) and not f.get("name")}
    added: list[tuple[str, NewFeed]] = []
    skipped: list[tuple[NewFeed, str]] = []
    batch: dict[str, str] = {}
    for f in new:
        key = same_url(f.url)
        if urlsplit(f.url).scheme.lower() not in ("http", "https"):
            skipped.append((f, "not an http(s) URL"))
        elif key in existing:
            skipped.append((f, f"already in {p.name} as '{existing[key]}'" if existing[key] else "already listed"))
        elif key in batch:
            skipped.append((f, f"listed twice; added once, as '{batch[key]}'"))
        else:
            name = _unique(_slug(f.title) or _feed_name_from_url(f.url), taken)
            batch[key] = name
            added.append((name, f))
    if not added:
        return AddResult((), tuple(skipped))
    entries = [_entry(name, f) for name, f in added]
    new_text = _splice(text, feeds, entries, y)
    if new_text is None:  # no block list to extend: let ruamel write the document (comments still kept)
        if not isinstance(old_feeds, CommentedSeq) or feeds.fa.flow_style():
            fresh = CommentedSeq(list(feeds))
            doc["feeds"] = feeds = fresh
        feeds.extend(entries)
        out = io.StringIO()
        y.dump(doc, out)
        new_text = out.getvalue()
    _write_validated(p, new_text)
    old_lines, new_lines = text.splitlines(), new_text.splitlines()
    opcodes = difflib.SequenceMatcher(None, old_lines, new_lines, autojunk=False).get_opcodes()
    changed = sum(i2 - i1 for op, i1, i2, _, _ in opcodes if op in ("replace", "delete"))
    return AddResult(tuple(added), tuple(skipped), changed)


def _splice(text: str, feeds: CommentedSeq, entries: list[CommentedMap], y: YAML) -> str | None:
    """``text`` with ``entries`` inserted as lines right after the last item of its block ``feeds:`` list.

    Inserting text, rather than dumping the whole document, leaves every existing byte where it was: the
    blank lines and comments that follow the list stay after it. The entries are written by ruamel (same
    indentation as the file) and the result is checked by loading it back; None when that is not possible.
    """
    if not feeds or feeds.fa.flow_style() or not text.endswith(("\n", "")):
        return None
    lines = text.splitlines(keepends=True)
    try:
        last = int(feeds.lc.item(len(feeds) - 1)[0])
    except (AttributeError, IndexError, KeyError, TypeError):
        return None
    dash = _SEQ_ITEM.match(lines[last]) if last < len(lines) else None
    if dash is None:
        return None
    offset = len(dash.group(1))
    end = last
    for j in range(last + 1, len(lines)):
        stripped = lines[j].strip()
        if not stripped or stripped.startswith("#"):
            continue  # blank lines and comments after the last item belong after the list
        if len(lines[j]) - len(lines[j].lstrip(" ")) > offset:
            end = j
            continue
        break
    rendered = io.StringIO()
    y.dump({"feeds": CommentedSeq(entries)}, rendered)
    block = rendered.getvalue().split("\n", 1)[1]
    if not lines[end].endswith("\n"):
        lines[end] += "\n"
    result = "".join(lines[: end + 1]) + block + "".join(lines[end + 1 :])
    try:
        check = YAML(typ="rt").load(result)
    except Exception:  # ruamel raises many kinds; any of them means "do not splice"
        return None
    urls = [str(f.get("url")) for f in check.get("feeds") or [] if isinstance(f, dict)]
    expected = [str(f.get("url")) for f in feeds if isinstance(f, dict)] + [str(e["url"]) for e in entries]
    return result if urls == expected else None


def _write_validated(p: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``p``, load it as feeds.yaml, then move it over ``p``.

    A symlinked feeds.yaml is written where the link points (the link stays a link).
    """
    p = p.resolve()
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        try:
            load_feeds(tmp)
        except ConfigError as e:
            issues = [ConfigIssue(str(p), i.line, i.message, i.hint) for i in e.issues]
            raise ConfigError(issues) from None
        if p.exists():
            os.chmod(tmp, p.stat().st_mode & 0o777)
        os.replace(tmp, p)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
