"""Hostile or broken servers, each against the real local FeedServer through the real pipeline.

Broken encodings (invalid UTF-8, a declaration that lies, Japanese without any declaration), a web page instead
of a feed, an empty feed, a huge one, entity bombs, script URLs: each feed comes out right, or fails with a
reason that says what to do, and never takes the other feeds down with it.
"""

from __future__ import annotations

import logging
import resource
import time
from pathlib import Path

import pytest
from harness import feed, poll
from servers import FeedServer, make_rss

JA_TITLE = "エヌビディア、アンソロピックに最大100億ドルを投資へ"
JA_SUMMARY = "マイクロソフトのAzureで演算能力を300億ドル分購入する。"


def ja_feed(encoding: str | None) -> str:
    decl = f' encoding="{encoding}"' if encoding else ""
    return (
        f'<?xml version="1.0"{decl}?>\n<rss version="2.0"><channel><title>日本のニュース</title>\n'
        f"<item><guid>ja-1</guid><title>{JA_TITLE}</title><link>https://jp.example/1</link>"
        f"<description>{JA_SUMMARY}</description></item>\n</channel></rss>\n"
    )


@pytest.mark.parametrize(
    ("case", "body", "content_type"),
    [
        ("shift_jis-undeclared", ja_feed(None).encode("cp932"), "application/rss+xml"),
        ("euc-jp-undeclared", ja_feed(None).encode("euc_jp"), "text/xml"),
        ("shift_jis-declared", ja_feed("Shift_JIS").encode("cp932"), "application/rss+xml"),
        ("declares-latin1-sends-utf8", ja_feed("ISO-8859-1").encode(), "application/rss+xml; charset=iso-8859-1"),
        ("declares-utf8-sends-shift_jis", ja_feed("utf-8").encode("cp932"), "application/rss+xml; charset=utf-8"),
        ("declares-utf8-sends-euc-jp", ja_feed("UTF-8").encode("euc_jp"), "application/rss+xml"),
    ],
)
def test_japanese_comes_out_right(
    tmp_path: Path, feed_server: FeedServer, case: str, body: bytes, content_type: str
) -> None:
    url = feed_server.add("/ja.xml", body, content_type=content_type)
    run = poll(tmp_path, [feed(case, url)], polled_before=True)
    assert run.reports[case].status == "ok", run.reports[case]
    (entry,) = run.entries(case)
    assert entry["title"] == JA_TITLE and entry["summary"] == JA_SUMMARY
    assert run.overview()[case]["title"] == "日本のニュース"
    assert JA_TITLE in run.console  # and the alert shows it, not mojibake


def test_invalid_utf8_in_a_utf8_feed_keeps_the_rest(tmp_path: Path, feed_server: FeedServer) -> None:
    """One bad byte must not turn the whole feed into windows-1252 mojibake (feedparser's own fallback)."""
    body = ja_feed("utf-8").encode().replace("300億ドル".encode(), b"300\xff\xfe" + "億ドル".encode())
    url = feed_server.add("/bad-utf8.xml", body, content_type="application/rss+xml; charset=utf-8")
    run = poll(tmp_path, [feed("bad-utf8", url)])
    assert run.reports["bad-utf8"].status == "ok"
    (entry,) = run.entries("bad-utf8")
    assert entry["title"] == JA_TITLE
    assert entry["summary"] == JA_SUMMARY.replace("300億", "300\ufffd\ufffd億")
    assert "invalid UTF-8" in run.overview()["bad-utf8"]["warning"]


def test_latin1_declared_and_latin1_sent_stays_latin1(tmp_path: Path, feed_server: FeedServer) -> None:
    """The UTF-8 check does not overrule a declaration that is right."""
    body = make_rss([{"guid": "1", "title": "Café à Zürich: Nvidia öffnet"}]).replace("utf-8", "iso-8859-1")
    url = feed_server.add("/latin1.xml", body.encode("latin-1"), content_type="application/rss+xml")
    run = poll(tmp_path, [feed("latin1", url)])
    assert run.entries("latin1")[0]["title"] == "Café à Zürich: Nvidia öffnet"


def test_html_page_is_reported_with_the_feeds_it_advertises(
    tmp_path: Path, feed_server: FeedServer, caplog: pytest.LogCaptureFixture
) -> None:
    page = b"""<!DOCTYPE html><html><head><title>News</title><base href="/blog/">
<link rel="stylesheet" href="/style.css">
<link rel="alternate" type="application/rss+xml" title="All posts" href="feed.xml">
<link rel="alternate" type="application/atom+xml" href="https://cdn.example/atom.xml">
<link rel="alternate" type="text/html" hreflang="ja" href="/ja/">
<link rel="alternate" type="application/rss+xml" href="javascript:alert(1)">
</head><body><p>Hello</p></body></html>"""
    url = feed_server.add("/news", page, content_type="text/html; charset=utf-8")
    caplog.set_level(logging.INFO, logger="watcher.poll")
    run = poll(tmp_path, [feed("news", url)])
    report = run.reports["news"]
    assert report.status == "failed"
    expected = f"it advertises: {feed_server.url}/blog/feed.xml, https://cdn.example/atom.xml"
    assert report.error is not None and report.error.startswith("an HTML page, not a feed; " + expected)
    assert "javascript" not in report.error
    assert expected in run.overview()["news"]["last_error"]  # what `watcher feeds` shows
    assert any("feed=news status=failed" in m and expected in m for m in caplog.messages)  # the poll log


def test_html_page_without_feed_links_says_so(tmp_path: Path, feed_server: FeedServer) -> None:
    url = feed_server.add("/plain", b"<html><body>no feeds here</body></html>", content_type="text/html")
    run = poll(tmp_path, [feed("plain", url)])
    assert "an HTML page, not a feed; it advertises no feed" in (run.reports["plain"].error or "")


def test_empty_valid_feed_is_not_an_error(tmp_path: Path, feed_server: FeedServer) -> None:
    url = feed_server.add("/empty.xml", make_rss([], title="Nothing yet"))
    run = poll(tmp_path, [feed("empty", url)])
    report = run.reports["empty"]
    assert report.status == "ok" and report.error is None and report.new_entries == 0
    row = run.overview()["empty"]
    assert row["status"] == "ok" and row["last_error"] is None and row["title"] == "Nothing yet"


def test_many_items_and_a_huge_title(tmp_path: Path, feed_server: FeedServer) -> None:
    items = [{"guid": f"g{i}", "title": f"item {i}", "summary": "Nvidia " * 20} for i in range(5000)]
    items[0]["title"] = "Anthropic " + "x" * 2_000_000
    body = make_rss(items, title="T" * 500_000)
    assert len(body) > 3_000_000
    url = feed_server.add("/big.xml", body)
    started = time.monotonic()
    run = poll(tmp_path, [feed("big", url, deadline=60)])
    assert time.monotonic() - started < 60
    assert run.reports["big"].status == "ok" and run.reports["big"].new_entries == 5000
    stored = run.entries("big")
    assert len(stored[0]["title"]) <= 1001 and stored[0]["title"].startswith("Anthropic x")
    assert len(run.overview()["big"]["title"]) <= 1001


def test_billion_laughs_one_line(tmp_path: Path, feed_server: FeedServer) -> None:
    """The one-line variant (all declarations on one line) that expat stops only by its amplification limit."""
    levels = ['<!ENTITY lol "lol">']
    for i in range(1, 10):
        previous = "lol" if i == 1 else f"lol{i - 1}"
        levels.append(f'<!ENTITY lol{i} "{f"&{previous};" * 10}">')
    body = (
        '<?xml version="1.0"?><!DOCTYPE rss [' + "".join(levels) + ']><rss version="2.0"><channel><title>t</title>'
        "<item><guid>1</guid><title>&lol9;</title><description>Nvidia &lol9;</description></item></channel></rss>"
    )
    assert "\n" not in body
    url = feed_server.add("/lol.xml", body)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    run = poll(tmp_path, [feed("lol", url), feed("fine", feed_server.add("/fine.xml", make_rss([{"guid": "1"}])))])
    elapsed = time.monotonic() - started
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert elapsed < 10 and grown_mb < 100, (elapsed, grown_mb)
    assert run.reports["fine"].status == "ok"
    report = run.reports["lol"]
    assert report.status in ("ok", "failed") and (report.status == "ok" or report.error)
    for e in run.entries("lol"):
        assert len(e["title"]) + len(e["summary"]) < 1000  # nothing was expanded


def test_quadratic_blowup_behind_a_long_comment(tmp_path: Path, feed_server: FeedServer) -> None:
    """A DOCTYPE pushed past the first 64 KB by a comment: feedparser still reads its entities from there.

    (Measured before the fix: with 2,000 references the summary was 100,000,000 characters after 3.7 s.)
    """
    big = "A" * 50_000
    body = (
        '<?xml version="1.0"?>\n<!--' + " " * 100_000 + f'-->\n<!DOCTYPE rss [\n<!ENTITY x "{big}">\n]>\n'
        '<rss version="2.0"><channel><title>t</title>'
        f"<item><guid>1</guid><title>t</title><description>{'&x;' * 20_000}</description></item></channel></rss>"
    )
    url = feed_server.add("/quad.xml", body)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    run = poll(tmp_path, [feed("quad", url)])
    elapsed = time.monotonic() - started
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert elapsed < 10 and grown_mb < 200, (elapsed, grown_mb)
    assert run.reports["quad"].status in ("ok", "failed")
    assert all(len(e["summary"]) < 100_000 for e in run.entries("quad"))


def test_script_urls_never_reach_an_alert(tmp_path: Path, feed_server: FeedServer) -> None:
    items = [
        {"guid": "1", "title": "Nvidia deal", "link": "javascript:alert(document.cookie)"},
        {"guid": "2", "title": "Azure deal", "link": " JaVaScRiPt:alert(1)"},
        {"guid": "3", "title": "Meta deal", "link": "data:text/html,<script>alert(1)</script>"},
        {"guid": "4", "title": "Good deal", "link": "/relative/4"},
    ]
    url = feed_server.add("/js.xml", make_rss(items))
    run = poll(tmp_path, [feed("js", url)], polled_before=True)
    links = {e["title"]: e["link"] for e in run.entries("js")}
    assert links == {"Nvidia deal": "", "Azure deal": "", "Meta deal": "", "Good deal": f"{feed_server.url}/relative/4"}
    assert "javascript" not in run.console.lower() and "data:" not in run.console
