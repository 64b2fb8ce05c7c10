"""Bytes -> entries: keys, plain text, dates, non-feeds, hostile XML."""

from __future__ import annotations

import resource
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from watcher.errors import ParseError
from watcher.parse import canonical_link, entry_key, neutralise_entities, parse

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)

RSS = b"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>T &amp; co</title><link>https://example.com/</link>
<item><guid>g-1</guid><title>Anthropic &lt;b&gt;commits&lt;/b&gt; $30B</title><link>https://example.com/a</link>
<description>&lt;p&gt;Azure &lt;script&gt;alert(1)&lt;/script&gt;compute&lt;/p&gt;</description>
<pubDate>Tue, 18 Nov 2025 16:00:00 GMT</pubDate><category>AI</category></item>
<item><title>No guid</title><link>HTTPS://Example.com/b#frag</link></item>
<item><title>Only text</title><description>body</description></item>
<item><title>Future</title><link>https://example.com/f</link><pubDate>Tue, 18 Nov 2031 16:00:00 GMT</pubDate></item>
</channel></rss>"""


def test_rss_entries_normalised() -> None:
    feed = parse(RSS, {"content-type": "application/rss+xml"}, url="https://example.com/feed", now=NOW)
    assert feed.title == "T & co" and feed.version == "rss20"
    a, b, c, f = feed.entries
    assert a.key == "id:g-1" and a.title == "Anthropic commits $30B"
    assert a.summary == "Azure compute" and "alert" not in a.summary
    assert a.published == datetime(2025, 11, 18, 16, 0, tzinfo=UTC) and a.categories == ("AI",)
    assert b.key == "link:https://example.com/b"
    assert c.key.startswith("sha256:") and c.link == ""
    assert f.published is None  # in the future: the store falls back to first seen


def test_keys_are_stable() -> None:
    assert entry_key("", "https://EXAMPLE.com/x#y", "t", "", "") == entry_key("", "https://example.com/x", "u", "", "")
    assert entry_key("", "", "t", "s", "c") == entry_key("", "", "t", "s", "c") != entry_key("", "", "t", "s", "d")
    assert canonical_link("https://a.b") == "https://a.b/"


def test_atom_and_japanese_dates() -> None:
    body = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>日本語</title><id>urn:x</id><updated>2025-11-19T00:00:00Z</updated>
<entry><id>urn:1</id><title>Anthropic、Azureの演算能力を最大300億ドル分購入へ</title>
<link href="/news/1"/><updated>2025年11月19日 9時30分</updated><summary>要約</summary></entry>
</feed>""".encode()
    feed = parse(body, {"content-type": "application/atom+xml"}, url="https://jp.example/feed", now=NOW)
    (e,) = feed.entries
    assert e.link == "https://jp.example/news/1"
    assert e.published == datetime(2025, 11, 19, 0, 30, tzinfo=UTC)  # 09:30 JST


def test_shift_jis_without_declaration_in_header() -> None:
    text = (
        '<?xml version="1.0" encoding="Shift_JIS"?><rss version="2.0"><channel><title>テスト</title>'
        "<item><guid>1</guid><title>エヌビディアが発表</title></item></channel></rss>"
    )
    feed = parse(text.encode("shift_jis"), {"content-type": "text/xml"}, now=NOW)
    assert feed.entries[0].title == "エヌビディアが発表"


def test_html_page_is_not_a_feed() -> None:
    with pytest.raises(ParseError, match="HTML page"):
        parse(
            b"<!DOCTYPE html><html><head><title>x</title></head><body>hi</body></html>",
            {"content-type": "text/html"},
            now=NOW,
        )


def test_garbage_and_empty_are_not_feeds() -> None:
    with pytest.raises(ParseError):
        parse(b"", {}, now=NOW)
    with pytest.raises(ParseError):
        parse(b"\x00\x01 binary junk", {"content-type": "application/octet-stream"}, now=NOW)


def test_empty_valid_feed_is_fine() -> None:
    feed = parse(b'<rss version="2.0"><channel><title>empty</title></channel></rss>', {}, now=NOW)
    assert feed.entries == () and feed.version == "rss20"


def test_malformed_xml_is_recovered_with_a_warning() -> None:
    body = (
        b'<rss version="2.0"><channel><title>x</title><item><title>A & B</title><guid>1</guid></item>'
        b"<item><title>second</title><guid>2</guid></item></channel></rss>"
    )
    feed = parse(body, {"content-type": "application/rss+xml"}, now=NOW)
    assert [e.title for e in feed.entries] == ["A & B", "second"]
    assert feed.warning


def test_json_feed() -> None:
    body = (
        b'{"version": "https://jsonfeed.org/version/1.1", "title": "J", "items": [{"id": "1", '
        b'"title": "Hello", "content_text": "Nvidia deal", "url": "https://j.example/1"}]}'
    )
    feed = parse(body, {"content-type": "application/feed+json"}, now=NOW)
    assert feed.version == "json11" and feed.entries[0].content == "Nvidia deal"


def test_quadratic_blowup_is_neutralised() -> None:
    """feedparser's loose parser expands a declared entity without limit (110 KB -> 1 GB, 48 s measured)."""
    big = "A" * 50_000
    refs = "&x;" * 20_000
    body = (
        f'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY x "{big}">]><rss version="2.0"><channel><title>t</title>'
        f"<item><title>t</title><description>{refs}</description></item></channel></rss>"
    ).encode()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    try:
        feed = parse(body, {"content-type": "application/rss+xml"}, now=NOW)
        longest = max((len(e.summary) for e in feed.entries), default=0)
    except ParseError:
        longest = 0
    elapsed = time.monotonic() - started
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert elapsed < 5, elapsed
    assert grown_mb < 200, grown_mb
    assert longest < 1_000_000


def test_neutralise_keeps_ordinary_documents() -> None:
    assert neutralise_entities(RSS) == RSS
    assert b"ENTITY" not in neutralise_entities(b'<!DOCTYPE x [<!ENTITY a "b">]><x/>')


def test_every_real_feed_parses(corpus_dir: Path) -> None:
    files = sorted((corpus_dir / "real").glob("*.xml"))
    assert len(files) >= 20
    for f in files:
        feed = parse(f.read_bytes(), {"content-type": "application/xml"}, url="https://example.com/", now=NOW)
        assert feed.entries, f.name
        assert len({e.key for e in feed.entries}) == len(feed.entries)
