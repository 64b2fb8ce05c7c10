"""End to end through the real command line: feeds on a local HTTP server, a real SMTP server, a real webhook.

Each test runs ``python -m watcher poll`` as a subprocess, exactly as a user would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from servers import ATOM_CONTENT_TYPE, FeedServer, SmtpServer, WebhookReceiver, make_atom, make_rss

NOW = datetime.now(UTC).replace(microsecond=0)

RULES = """\
notify:
  mail: ["{mail}"]
  hook: ["{hook}"]
defaults:
  notify: [mail, hook]
rules:
  - name: big-compute
    tags: [compute-contracts]
    all:
      - any: [compute, cloud, 演算]
      - any: [billion, 億ドル]
  - name: claude-in-microsoft
    tags: [integration-roadmap]
    all:
      - any: [claude, anthropic]
      - any: [foundry, copilot]
"""

RSS_ITEMS = [
    {
        "guid": "rss-1",
        "title": "Anthropic commits $30 billion to Azure compute",
        "link": "https://n.example/1",
        "summary": "A deal for cloud capacity.",
        "published": NOW - timedelta(hours=2),
    },
    {
        "guid": "rss-2",
        "title": "Microsoft raises Xbox prices",
        "link": "https://n.example/2",
        "published": NOW - timedelta(hours=3),
    },
]
ATOM_ITEMS = [
    {
        "id": "urn:atom:1",
        "title": "Claude arrives in Microsoft Foundry",
        "link": "https://a.example/1",
        "summary": "Available to all customers.",
        "updated": NOW - timedelta(hours=1),
    },
]
JA_ITEMS = [
    {
        "guid": "ja-1",
        "title": "Anthropic、Azureの演算能力を最大300億ドル分購入へ",
        "link": "https://j.example/1",
        "published": NOW - timedelta(hours=1),
    },
    {
        "guid": "ja-2",
        "title": "新型スマートフォンが発売",
        "link": "https://j.example/2",
        "published": NOW - timedelta(hours=1),
    },
]


class Watcher:
    """Runs the CLI against a temporary config and database."""

    def __init__(self, tmp: Path, feeds: list[dict[str, Any]], rules: str) -> None:
        self.tmp = tmp
        self.feeds_path = tmp / "feeds.yaml"
        self.rules_path = tmp / "rules.yaml"
        self.db = tmp / "watcher.db"
        lines = ["defaults:", "  timeout: 2s", "  deadline: 4s", "feeds:"]
        for f in feeds:
            lines += [f"  - name: {f['name']}", f"    url: {f['url']}"]
        self.feeds_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        self.rules_path.write_text(rules, encoding="utf-8")

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHER_")}
        cmd = [
            sys.executable,
            "-m",
            "watcher",
            "--feeds",
            str(self.feeds_path),
            "--rules",
            str(self.rules_path),
            "--db",
            str(self.db),
            *args,
        ]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
        if check:
            assert out.returncode == 0, out.stdout + out.stderr
        return out

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "--json").stdout)


@pytest.fixture
def setup(
    tmp_path: Path, feed_server: FeedServer, smtp_server: SmtpServer, webhook: WebhookReceiver
) -> Callable[..., Watcher]:
    def make(extra: list[dict[str, Any]] | None = None) -> Watcher:
        feeds = [
            {"name": "wire-rss", "url": feed_server.add("/rss.xml", make_rss(RSS_ITEMS))},
            {
                "name": "blog-atom",
                "url": feed_server.add("/atom.xml", make_atom(ATOM_ITEMS), content_type=ATOM_CONTENT_TYPE),
            },
            {"name": "itmedia-ja", "url": feed_server.add("/ja.xml", make_rss(JA_ITEMS, title="日本語ニュース"))},
            *(extra or []),
        ]
        rules = RULES.format(mail=smtp_server.apprise_url(), hook=webhook.apprise_url())
        return Watcher(tmp_path, feeds, rules)

    return make


def hit_set(w: Watcher) -> set[tuple[str, str]]:
    return {(h["rule"], h["title"]) for h in w.json("hits")}


def test_poll_end_to_end(
    setup: Callable[..., Watcher], feed_server: FeedServer, smtp_server: SmtpServer, webhook: WebhookReceiver
) -> None:
    w = setup()
    out = w.run("poll")
    assert "3 ok" in out.stderr

    expected = {
        ("big-compute", "Anthropic commits $30 billion to Azure compute"),
        ("claude-in-microsoft", "Claude arrives in Microsoft Foundry"),
        ("big-compute", "Anthropic、Azureの演算能力を最大300億ドル分購入へ"),
    }
    assert hit_set(w) == expected
    hits = w.json("hits")
    ja = next(h for h in hits if h["feed"] == "itmedia-ja")
    assert ja["tags"] == ["compute-contracts"] and set(ja["matched"]) == {"演算", "億ドル"}
    assert ja["link"] == "https://j.example/1" and ja["published"] and ja["first_seen"]

    mails = smtp_server.wait_for(3)
    hooks = webhook.wait_for(3)
    assert sorted(m["subject"] for m in mails) == sorted(h.body["title"] for h in hooks)
    assert any("300億ドル" in m["subject"] for m in mails)
    assert all("Rule:" in h.body["message"] for h in hooks)

    feeds = {f["name"]: f for f in w.json("feeds")}
    assert feeds["wire-rss"]["entries"] == 2 and feeds["itmedia-ja"]["hits"] == 1
    assert all(f["http_status"] == 200 for f in feeds.values())

    # second poll: conditional requests, all 304, nothing sent
    w.run("poll")
    assert feed_server.last_headers("/rss.xml").get("if-none-match")
    feeds = {f["name"]: f for f in w.json("feeds")}
    assert {f["status"] for f in feeds.values()} == {"not-modified"}
    assert {f["http_status"] for f in feeds.values()} == {304}

    # the RSS feed gains two items (one matching each rule): exactly two new alerts on each channel
    added = [
        {
            "guid": "rss-3",
            "title": "OpenAI signs $300 billion cloud contract",
            "link": "https://n.example/3",
            "published": NOW,
        },
        {"guid": "rss-4", "title": "GitHub Copilot adds Claude Opus", "link": "https://n.example/4", "published": NOW},
    ]
    feed_server.add("/rss.xml", make_rss(added + RSS_ITEMS))
    w.run("poll")
    assert len(smtp_server.wait_for(5)) == 5 and len(webhook.wait_for(5)) == 5
    w.run("poll")  # and nothing after that
    assert len(smtp_server.messages) == 5 and len(webhook.received) == 5
    subjects = [m["subject"] for m in smtp_server.messages]
    assert len(set(subjects)) == 5


def test_broken_feeds_are_reported_and_others_still_alert(
    setup: Callable[..., Watcher], feed_server: FeedServer, smtp_server: SmtpServer, webhook: WebhookReceiver
) -> None:
    broken = [
        {"name": "error-500", "url": feed_server.add("/500", b"oops", status=500)},
        {"name": "hangs", "url": feed_server.add("/hang", make_rss(RSS_ITEMS), hang=30)},
        {
            "name": "html-page",
            "url": feed_server.add(
                "/page", b"<!DOCTYPE html><html><body>not a feed</body></html>", content_type="text/html"
            ),
        },
        {
            "name": "bad-xml",
            "url": feed_server.add(
                "/bad",
                b"<rss><channel><item><title>x</ti",
            ),
        },
    ]
    w = setup(broken)
    out = w.run("poll")
    # feedparser recovers what it can of ill-formed XML: that feed polls, with a warning
    assert "4 ok" in out.stderr and "3 failed" in out.stderr
    assert len(hit_set(w)) == 3
    assert len(smtp_server.wait_for(3)) == 3 and len(webhook.wait_for(3)) == 3

    feeds = {f["name"]: f for f in w.json("feeds")}
    assert feeds["error-500"]["http_status"] == 500 and "500" in feeds["error-500"]["last_error"]
    assert "timed out" in feeds["hangs"]["last_error"]
    assert "HTML" in feeds["html-page"]["last_error"]
    assert feeds["bad-xml"]["status"] == "ok" and "SAXParseException" in feeds["bad-xml"]["warning"]
    for name in ("error-500", "hangs", "html-page"):
        assert feeds[name]["consecutive_failures"] == 1
        assert feeds[name]["status"] == "failed"
        assert feeds[name]["state"] == "backing off" and feeds[name]["next_poll_reason"] == "backoff"
    table = w.run("feeds").stdout
    assert "error-500" in table and "backing off" in table and "ok (warning)" in table

    # the failed feeds back off: the next cycle holds them back and says until when; --force polls them
    out = w.run("poll")
    assert "3 held back" in out.stderr and "held back: error-500: backing off until" in out.stderr
    assert {f["name"]: f for f in w.json("feeds")}["error-500"]["consecutive_failures"] == 1
    w.run("poll", "--force")
    feeds = {f["name"]: f for f in w.json("feeds")}
    assert feeds["error-500"]["consecutive_failures"] == 2


def test_poll_exit_codes(tmp_path: Path) -> None:
    w = Watcher(tmp_path, [], "rules:\n  - name: r\n    anyy: [x]\n")
    out = w.run("poll", check=False)
    assert out.returncode == 2 and "rules.yaml:3: unknown key 'anyy'" in out.stderr
    w.rules_path.write_text("rules: []\n")
    w.db = tmp_path / "no-such-dir" / "w.db"
    out = w.run("poll", check=False)
    assert out.returncode == 3 and "does not exist" in out.stderr


def test_console_alerts_when_no_notifier(tmp_path: Path, feed_server: FeedServer) -> None:
    url = feed_server.add("/rss.xml", make_rss(RSS_ITEMS))
    w = Watcher(tmp_path, [{"name": "wire", "url": url}], "rules:\n  - name: deal\n    any: [billion]\n")
    out = w.run("poll")
    assert "=== ALERT deal: Anthropic commits $30 billion to Azure compute" in out.stdout
    assert "https://n.example/1" in out.stdout
    assert "=== ALERT" not in w.run("poll").stdout


def test_first_poll_alerts_only_recent_backlog(tmp_path: Path, feed_server: FeedServer) -> None:
    items = [
        {"guid": "old", "title": "old billion deal", "published": NOW - timedelta(days=30)},
        {"guid": "new", "title": "new billion deal", "published": NOW - timedelta(hours=5)},
    ]
    url = feed_server.add("/rss.xml", make_rss(items))
    w = Watcher(tmp_path, [{"name": "wire", "url": url}], "rules:\n  - name: deal\n    any: [billion]\n")
    out = w.run("poll")
    assert "new billion deal" in out.stdout and "old billion deal" not in out.stdout
    assert {h["title"] for h in w.json("hits")} == {"old billion deal", "new billion deal"}
