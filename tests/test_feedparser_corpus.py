"""feedparser's own ill-formed, encoding, entity and sanitiser test files, served over HTTP, through the pipeline.

Each file is served with the headers its test declares (``Header:`` lines, in INDEX.jsonl) and polled by the
real pipeline in one cycle: no poll may crash or stall the others, every outcome is reported, and no script
payload of the sanitiser cases reaches an alert. Where a file states its expected text (an entity's
character, a legacy encoding's letters), the stored text is checked against it.
"""

from __future__ import annotations

import ast
import json
import re
import time
from pathlib import Path
from typing import Any

from harness import feed, poll
from servers import FeedServer

from watcher.notify import render
from watcher.store import PendingAlert
from watcher.text import collapse_whitespace

CATEGORIES = ("encoding", "entities", "illformed", "illformed/chardet", "illformed/geo", "wellformed/sanitize")

# What an alert must never carry: markup or URLs that would run script where the alert is shown.
PAYLOAD = re.compile(
    r"<\s*(script|iframe|object|embed|applet|meta|link|style|svg|form)\b|javascript\s*:|vbscript\s*:|data\s*:\s*text/html"
    r"|\bon(error|load|click|mouseover|focus)\s*=|expression\s*\(",
    re.IGNORECASE,
)

EXPECTED_FAILURES = {
    "illformed/rss_empty_document.xml": "not a feed",  # a comment and nothing else: correctly not a feed
}

# Japanese files of the chardet set: no declaration at all, the detection must still read them right.
JAPANESE_TITLES = {
    "illformed/chardet/eucjp.xml": "ゲーム三昧な正月",
    "illformed/chardet/shiftjis.xml": "DrecomRSSに記事投稿が反映されない…",
}


def corpus_rows(corpus_dir: Path) -> list[dict[str, Any]]:
    index = corpus_dir / "feedparser" / "INDEX.jsonl"
    rows = [json.loads(line) for line in index.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r for r in rows if r["category"] in CATEGORIES]


def served_headers(row: dict[str, Any]) -> tuple[str, dict[str, str]]:
    """(Content-Type, other headers) from the file's ``Header:`` lines; application/xml when it names none."""
    ctype, extra = "application/xml", {}
    for line in row["headers"]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-type":
            ctype = value.strip()
        else:
            extra[name.strip()] = value.strip()
    return ctype, extra


def expected_text(expect: str, what: str) -> str | None:
    """The literal in ``<what> == '...'`` of an Expect expression, if it states one."""
    m = re.search(re.escape(what) + r"\s*==\s*('(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")", expect)
    return ast.literal_eval(m.group(1)) if m else None


def pending_alert(e: dict[str, Any]) -> PendingAlert:
    return PendingAlert(
        id=e["id"],
        destination="console",
        attempts=0,
        delivered=(),
        rule="everything",
        severity="notable",
        tags=(),
        matched=(),
        details={},
        title=e["title"],
        link=e["link"],
        summary=e["summary"],
        feed=e["feed"],
        published=e["published"],
        first_seen=e["first_seen"],
    )


def test_feedparser_corpus_over_http(tmp_path: Path, corpus_dir: Path, feed_server: FeedServer) -> None:
    rows = corpus_rows(corpus_dir)
    counts = {c: sum(r["category"] == c for r in rows) for c in CATEGORIES}
    assert counts["encoding"] == 82 and counts["entities"] == 256 and counts["wellformed/sanitize"] == 745, counts
    configs = []
    for r in rows:
        ctype, extra = served_headers(r)
        url = feed_server.add(
            "/c/" + r["path"], (corpus_dir / "feedparser" / r["path"]).read_bytes(), content_type=ctype, headers=extra
        )
        configs.append(feed(r["path"], url))
    # One server that never answers: it must cost its own deadline, not hold up the thousand others.
    configs.append(feed("hangs", feed_server.add("/hangs", b"", hang=30), timeout=2, deadline=3))

    started = time.monotonic()
    run = poll(tmp_path, configs, polled_before=True)
    elapsed = time.monotonic() - started

    assert elapsed < 90, f"{len(configs)} feeds took {elapsed:.1f}s"
    assert set(run.reports) == {c.name for c in configs}, "every feed gets a report"
    failed = {name: r.error or "" for name, r in run.reports.items() if r.status == "failed"}
    for name, error in failed.items():
        assert error.strip(), f"{name} failed without a reason"
        assert "internal error" not in error, (name, error)
    assert "timed out" in failed.pop("hangs")
    assert {k: v.split(":")[0] for k, v in failed.items()} == EXPECTED_FAILURES, failed
    ok = [r for r in run.reports.values() if r.status == "ok"]
    assert len(ok) == len(rows) - len(EXPECTED_FAILURES)

    # Nothing an alert shows carries a script payload: the alerts delivered (the catch-all rule made one of
    # every entry with text), and the alert each stored entry would render, text or not.
    stored = run.entries()
    with_text = [e for e in stored if (e["title"] + e["summary"] + e["content"]).strip()]
    alerts = run.console.split("\n=== ALERT ")[1:]
    assert len(alerts) == len(with_text) > 200, (len(alerts), len(with_text))
    for alert in alerts:
        assert not PAYLOAD.search(alert), alert
    for e in stored:
        message = render(pending_alert(e))
        assert not PAYLOAD.search(message.title + "\n" + message.body), (e["feed"], message)

    overview = run.overview()
    for r in rows:
        # Entities: each file's feed title holds one undeclared HTML entity, which must arrive as its character.
        title = expected_text(r["expect"], "feed['title']")
        if title is not None and r["category"] == "entities":
            assert overview[r["path"]]["title"] == collapse_whitespace(title), r["path"]
        # Encodings: where the file states the decoded text, the stored summary is that text.
        summary = expected_text(r["expect"], "entries[0]['description']")
        if summary is not None and r["category"] == "encoding" and "<" not in summary and "&" not in summary:
            assert run.entries(r["path"])[0]["summary"] == collapse_whitespace(summary), r["path"]
    for path, title in JAPANESE_TITLES.items():
        assert run.entries(path)[0]["title"] == title
        assert "Japanese text detected" in (overview[path]["warning"] or "")
