"""Tests for watcher.jsonfeed (JSON Feed 1.0/1.1) and watcher.text.html_to_text."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watcher.jsonfeed import MAX_ITEMS, parse_json_feed
from watcher.models import Entry, ParsedFeed
from watcher.text import collapse_whitespace, html_to_text

V1 = "https://jsonfeed.org/version/1"
V11 = "https://jsonfeed.org/version/1.1"


def feed(items: Any = (), **fields: Any) -> bytes:
    doc: dict[str, Any] = {"version": V11, "title": "T", **fields}
    if items != ():
        doc["items"] = items
    return json.dumps(doc).encode()


def parse(body: bytes, **kwargs: Any) -> ParsedFeed:
    result = parse_json_feed(body, **kwargs)
    assert result is not None
    return result


def only(body: bytes, **kwargs: Any) -> Entry:
    result = parse(body, **kwargs)
    assert len(result.entries) == 1
    return result.entries[0]


# --- documents -----------------------------------------------------------------------------------------


def test_corpus_example(corpus_dir: Path) -> None:
    # corpus_dir (conftest.py) skips with "shared corpus not found at ..." when ../shared/corpus is absent.
    path = corpus_dir / "feedparser" / "json" / "example.json"
    if not path.is_file():
        pytest.skip(f"shared corpus has no {path}")
    result = parse(path.read_bytes())
    assert result.title == "My Example Feed"
    assert result.version == "json10"
    assert result.warning is None
    first, second = result.entries
    assert first == Entry(
        key="2",
        title="post 2",
        link="https://example.org/second-item",
        content="This is a second item.",
        author="me",  # inherited from the feed, as the spec says
        categories=("test", "JSON"),
    )
    assert second.key == "1"
    assert second.author == "you"
    assert second.content == "Hello, world!"  # the <script> is gone
    assert second.title == "Hello, world!"  # no title: made from the text
    assert second.link == "https://example.org/initial-post"
    assert second.published is None


def test_version_11_document() -> None:
    body = json.dumps(
        {
            "version": V11,
            "title": "  Example\n News ",
            "home_page_url": "https://news.example.jp/",
            "authors": [{"name": "Desk"}],
            "language": "ja",
            "items": [
                {
                    "id": "https://news.example.jp/a/1",
                    "url": "/a/1",
                    "title": "ソフトバンク、300億ドル投資",
                    "summary": "要約\n  です",
                    "content_html": "<p>本文&amp;詳細</p><p>second&nbsp;para</p>",
                    "date_published": "2025-06-10T12:00:00+09:00",
                    "authors": [{"url": "no name"}, {"name": "記者 太郎"}],
                    "tags": ["AI", "  AI ", "", 3, "エネルギー"],
                },
                {
                    "id": 42,
                    "external_url": "https://other.example.com/x",
                    "content_text": "plain   text",
                    "date_published": "2025-06-10T03:00:00Z",
                },
            ],
        }
    ).encode()
    result = parse(body, base_url="https://news.example.jp/feed.json")
    assert (result.title, result.version, result.warning) == ("Example News", "json11", None)
    a, b = result.entries
    assert a == Entry(
        key="https://news.example.jp/a/1",
        title="ソフトバンク、300億ドル投資",
        link="https://news.example.jp/a/1",
        summary="要約 です",
        content="本文&詳細 second para",
        author="記者 太郎",
        categories=("AI", "エネルギー"),
        published=datetime(2025, 6, 10, 3, 0, tzinfo=UTC),
    )
    assert a.published is not None and a.published.tzinfo is UTC
    assert b.key == "42"  # numeric ids are coerced to strings (spec)
    assert b.link == "https://other.example.com/x"
    assert b.author == "Desk"
    assert b.title == "plain text"
    assert b.published == a.published


def test_version_10_document() -> None:
    body = json.dumps(
        {
            "version": V1,
            "title": "Old",
            "author": {"name": "Feed Author"},
            "items": [
                {"id": "1", "content_text": "x", "author": {"name": "Item Author"}},
                {"id": "2", "content_text": "y"},
            ],
        }
    ).encode()
    result = parse(body)
    assert result.version == "json10"
    assert [e.author for e in result.entries] == ["Item Author", "Feed Author"]


@pytest.mark.parametrize(
    ("version", "expected"),
    [(V1, "json10"), (V1 + ".0", "json10"), (V1 + "/", "json10"), (V11, "json11"), (V1 + ".2", "json11")],
)
def test_versions(version: str, expected: str) -> None:
    assert parse(feed(version=version, items=[])).version == expected


def test_utf8_bom_is_accepted() -> None:
    assert parse(b"\xef\xbb\xbf" + feed(items=[])).title == "T"


# --- entry fields --------------------------------------------------------------------------------------


def test_key_falls_back_to_url_then_hash() -> None:
    assert only(feed([{"url": "https://e.com/1", "content_text": "c"}])).key == "https://e.com/1"
    entry = only(feed([{"title": "t", "content_text": "c"}]))
    assert entry.key == hashlib.sha256(b"t\nc").hexdigest()
    assert only(feed([{"id": "  ", "id2": 1, "title": "t", "content_text": "c"}])).key == entry.key
    assert only(feed([{"id": True, "title": "t", "content_text": "c"}])).key == entry.key


def test_very_long_id_is_hashed() -> None:
    long_id = "x" * 5000
    assert only(feed([{"id": long_id}])).key == hashlib.sha256(long_id.encode()).hexdigest()


def test_title_made_from_text() -> None:
    text = "あ" * 50 + " " + "b" * 100
    entry = only(feed([{"id": "1", "content_text": text}]))
    assert entry.title == text[:80]
    assert only(feed([{"id": "1", "summary": "just a summary"}])).title == "just a summary"


def test_longest_content_block_wins() -> None:
    entry = only(feed([{"id": "1", "content_text": "short", "content_html": "<p>much longer text</p>"}]))
    assert entry.content == "much longer text"
    entry = only(feed([{"id": "1", "content_text": "a much longer text", "content_html": "<b>html</b>"}]))
    assert entry.content == "a much longer text"


@pytest.mark.parametrize(
    ("url", "base_url", "home", "expected"),
    [
        ("/a/1", "https://site.example/feed.json", None, "https://site.example/a/1"),
        ("a/1", None, "https://home.example/blog/", "https://home.example/blog/a/1"),
        ("/a/1", "https://site.example/f.json", "https://home.example/", "https://site.example/a/1"),
        ("/a/1", None, None, ""),  # relative with nothing to resolve against
        ("/a/1", None, "not a url", ""),
        ("javascript:alert(1)", "https://site.example/", None, ""),
        ("data:text/html,<script>", None, None, ""),
        ("https://e.com/a b", None, None, "https://e.com/a%20b"),
        ("https://e.com/\nx", None, None, ""),
        ("http://[::1", None, None, ""),
        ("HTTPS://E.com/x", None, None, "HTTPS://E.com/x"),
    ],
)
def test_links(url: str, base_url: str | None, home: str | None, expected: str) -> None:
    fields = {"home_page_url": home} if home else {}
    entry = only(feed([{"id": "1", "url": url}], **fields), base_url=base_url)
    assert entry.link == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2025-06-10T12:00:00+09:00", datetime(2025, 6, 10, 3, 0, tzinfo=UTC)),
        ("2025-06-10T03:00:00Z", datetime(2025, 6, 10, 3, 0, tzinfo=UTC)),
        ("2025-06-10T03:00:00.123456-00:00", datetime(2025, 6, 10, 3, 0, 0, 123456, tzinfo=UTC)),
        ("2025-06-10T03:00:00", datetime(2025, 6, 10, 3, 0, tzinfo=UTC)),  # no offset: UTC
        ("2025年6月10日 12時", datetime(2025, 6, 10, 3, 0, tzinfo=UTC)),  # see watcher.dates
        ("Tue, 10 Jun 2025 03:00:00 GMT", datetime(2025, 6, 10, 3, 0, tzinfo=UTC)),
        ("0001-01-01T00:00:00+01:00", None),
        ("yesterday", None),
        ("", None),
        (1718000000, None),
        (None, None),
        ({"date": "2025-06-10"}, None),
        ("2025-06-10T03:00:00Z" + "0" * 100, None),
    ],
)
def test_published(value: Any, expected: datetime | None) -> None:
    assert only(feed([{"id": "1", "date_published": value}])).published == expected


def test_lone_surrogates_are_replaced() -> None:
    body = b'{"version": "%s", "title": "\\ud800x", "items": [{"content_text": "\\udc00a"}]}' % V11.encode()
    result = parse(body)
    assert result.title == "\ufffdx"
    entry = result.entries[0]
    for text in (entry.key, entry.title, entry.content):
        text.encode("utf-8")  # must not raise


# --- not a feed / hostile input ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"\xff\xfe\x00{",
        b"[1, 2, 3]",
        b'[{"version": "https://jsonfeed.org/version/1.1"}]',
        b'"https://jsonfeed.org/version/1.1"',
        b"null",
        b"42",
        b'{"title": "no version", "items": []}',
        b'{"version": 1.1, "items": []}',
        b'{"version": "https://example.com/version/1", "items": []}',
        b'{"version": "http://jsonfeed.org/version/1", "items": []}',
        b'<?xml version="1.0"?><rss version="2.0"><channel><title>x</title></channel></rss>',
        b'{"version": "https://jsonfeed.org/version/1.1", "items": [',  # truncated
        b"[" * 200_000 + b"]" * 200_000,  # nesting bomb: RecursionError inside json
        b'{"version": "https://jsonfeed.org/version/1", "n": ' + b"9" * 5000 + b"}",  # int digit limit
    ],
)
def test_not_a_feed(body: bytes) -> None:
    assert parse_json_feed(body) is None


def test_not_bytes_is_not_a_feed() -> None:
    assert parse_json_feed(None) is None  # type: ignore[arg-type]


@pytest.mark.parametrize("items", [None, {}, {"0": {"id": "1"}}, "items", 3, True])
def test_items_not_a_list(items: Any) -> None:
    result = parse(feed(items=items))
    assert result.entries == ()
    assert result.warning is not None and "items" in result.warning


def test_items_missing() -> None:
    result = parse(feed())
    assert result.entries == ()
    assert result.warning is not None


def test_wrong_types_everywhere() -> None:
    body = json.dumps(
        {
            "version": V11,
            "title": 42,
            "home_page_url": ["x"],
            "authors": "nobody",
            "items": [
                1,
                "item",
                None,
                [],
                {},  # nothing to identify it by
                {"id": None, "url": None, "title": None},
                {
                    "id": 5,
                    "title": ["not", "a", "string"],
                    "url": 3,
                    "summary": {"x": 1},
                    "content_text": 7,
                    "content_html": ["<p>"],
                    "tags": "not-a-list",
                    "authors": [1, None, {"name": 3}],
                    "author": ["x"],
                    "date_published": 123,
                },
                {"id": "ok", "title": "fine", "tags": [["nested"], {"a": 1}, "real"]},
            ],
        }
    ).encode()
    result = parse(body)
    assert result.title == ""
    assert result.warning == "6 unusable items skipped"
    assert result.entries == (
        Entry(key="5", title="", link="", author="nobody"),
        Entry(key="ok", title="fine", link="", author="nobody", categories=("real",)),
    )


def test_nested_junk_inside_items() -> None:
    junk: Any = "deep"
    for _ in range(200):  # 400 levels: json.dumps itself recurses
        junk = {"a": [junk]}
    entry = only(feed([{"id": "1", "title": junk, "content_html": junk, "tags": [junk], "url": junk}]))
    assert entry == Entry(key="1", title="", link="")


def test_items_are_capped() -> None:
    items = [{"id": str(i)} for i in range(MAX_ITEMS + 2_500)]
    result = parse(feed(items))
    assert len(result.entries) == MAX_ITEMS
    assert result.entries[-1].key == str(MAX_ITEMS - 1)
    assert result.warning == f"2500 items beyond the first {MAX_ITEMS} ignored"


def test_huge_strings() -> None:
    big = "<p>" + "word " * 200_000 + "</p>"
    entry = only(feed([{"id": "1", "content_html": big, "title": "t" * 100_000}]))
    assert len(entry.content) == len("word " * 200_000) - 1
    assert len(entry.title) == 100_000


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)
item_fields = st.sampled_from(
    ["id", "url", "external_url", "title", "summary", "content_text", "content_html", "date_published",
     "tags", "author", "authors"]
)  # fmt: skip


@settings(database=None, deadline=None, max_examples=100)
@given(
    st.dictionaries(st.sampled_from(["title", "home_page_url", "author", "authors", "items"]), json_values),
    st.lists(st.dictionaries(item_fields, json_values) | json_values, max_size=5),
)
def test_arbitrary_json_never_raises(top: dict[str, Any], items: list[Any]) -> None:
    doc = {**top, "version": V11}
    if "items" not in top:
        doc["items"] = items
    result = parse_json_feed(json.dumps(doc).encode(), base_url="https://e.com/")
    assert isinstance(result, ParsedFeed)
    for entry in result.entries:
        assert entry.key
        assert entry.link == "" or entry.link.startswith(("http://", "https://"))


@settings(database=None, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_raise(body: bytes) -> None:
    assert parse_json_feed(body) is None or isinstance(parse_json_feed(body), ParsedFeed)


# --- html_to_text --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("html", "expected"),
    [
        ("", ""),
        ("plain text", "plain text"),
        ("<p>Hello, world!</p>\n\n<script>alert();</script>", "Hello, world!"),
        ("a<script type='text/javascript'>document.write('<p>x</p>')</script>b", "ab"),
        ("a<SCRIPT>evil()</SCRIPT>b", "ab"),
        ("a<script>never closed <p>still script</p>", "a"),
        ("a<script/>evil()</script>b", "ab"),
        ("<style>p { color: red }</style>styled", "styled"),
        ("<noscript>enable JS</noscript><template><p>t</p></template>x", "x"),
        ("<svg><script>bad()</script></svg>ok", "ok"),
        ("AT&amp;T &lt;b&gt; &#x3042;&#12354; caf&eacute; a&nbsp;b", "AT&T <b> ああ café a b"),
        ("&copy 2025 &bogus;", "© 2025 &bogus;"),
        ("  many\n\n\tlines   and\u3000spaces  ", "many lines and spaces"),
        ("<p>one</p><p>two</p><br>three<li>four", "one two three four"),
        ("un<b>believ</b>able, <a href='x'>東京</a>で発表", "unbelievable, 東京で発表"),
        ("<p>日本語の<strong>テキスト</strong>です。</p>", "日本語のテキストです。"),
        ("ｶﾀｶﾅ and ＡＩ stay as written", "ｶﾀｶﾅ and ＡＩ stay as written"),
        ("x <!-- a comment --> y", "x y"),
        ("x <![CDATA[<b>cdata</b>]]> y", "x y"),
        ('text then a cut-off <a href="http://e.com/', "text then a cut-off"),
        ("x <!-- never closed", "x"),
        ("x </", "x"),
        ("1 < 2 and 3 > 2", "1 < 2 and 3 > 2"),
        ("tab\x00null\x1bescape\u200bzero-width", "tab null escape zero-width"),
        ('<img src=x onerror="alert(1)">caption', "caption"),
    ],
)
def test_html_to_text(html: str, expected: str) -> None:
    assert html_to_text(html) == expected


def test_collapse_whitespace() -> None:
    assert collapse_whitespace(" a \n\t b\u3000c\r\n") == "a b c"


# A whole tag ("<b>", "</p>", "<?x ?>"): stray "<" and "?" characters may sit side by side in the text
# (html_to_text("<<?>?") is "<?", two characters of data), but no complete tag may come through.
TAG_START = re.compile(r"<[A-Za-z/!?][^<>]*>")


@settings(database=None, deadline=None, max_examples=300)
@given(st.text(alphabet="<>/!?-=\"' abpscriptyle\n日本", max_size=80))
def test_html_to_text_never_keeps_markup(html: str) -> None:
    # Without entities in the input, any "<tag" in the output could only be markup that leaked through.
    text = html_to_text(html)
    assert not TAG_START.search(text)
    assert "script" not in text or "script" in re.sub(r"<script.*", "", html, flags=re.S | re.I)
