"""``watcher rules test | explain | backtest`` and the cooldown, through the real command line.

Feeds come from a local HTTP server, alerts go to a local webhook receiver, the database is a real SQLite file.
"""

from __future__ import annotations

import hashlib
import json
import os
import pty
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from servers import FeedServer, WebhookReceiver, make_rss

from watcher.cli.progress import Progress, wanted
from watcher.models import Entry
from watcher.store import PollWrite, Store

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
NOW = datetime.now(UTC).replace(microsecond=0)


def watcher(
    *args: str, rules: Path, db: Path | None = None, feeds: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHER_")}
    cmd = [sys.executable, "-m", "watcher", "--rules", str(rules)]
    cmd += ["--db", str(db)] if db else []
    cmd += ["--feeds", str(feeds)] if feeds else ["--feeds", "/nonexistent/feeds.yaml"]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=120, env={**base_env, **(env or {})})


# --- rules test ---------------------------------------------------------------------------------------------


def test_the_issue_example_passes_exactly_as_written() -> None:
    out = watcher("rules", "test", rules=DATA / "issue3_rules.yaml")
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.strip() == f"{DATA / 'issue3_rules.yaml'}: 15 examples of 4 rules pass"


def test_the_shipped_rules_pass() -> None:
    out = watcher("rules", "test", rules=ROOT / "rules.yaml")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "examples of" in out.stdout and "pass" in out.stdout


def test_a_broken_copy_fails_with_the_line_of_the_example(tmp_path: Path) -> None:
    lines = (ROOT / "rules.yaml").read_text(encoding="utf-8").splitlines()
    # break the first rule whose examples are listed one per line: flip its first match example to a no-match one
    i = next(n for n, line in enumerate(lines) if line.strip() == "match:")
    example = lines[i + 1]
    text = json.loads(example.split("- ", 1)[1]) if '"' in example else example.split("- ", 1)[1]
    lines.insert(i + 1, lines[i + 1].split("- ", 1)[0] + '- "Microsoft raises Xbox prices in Europe"')
    j = next(n for n in range(i + 1, len(lines)) if lines[n].strip() == "no_match:")
    lines.insert(j + 1, lines[j + 1].split("- ", 1)[0] + "- " + json.dumps(text, ensure_ascii=False))
    broken = tmp_path / "rules.yaml"
    broken.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = watcher("rules", "test", rules=broken)
    assert out.returncode == 1, out.stdout + out.stderr
    rule = next(line.split("name:", 1)[1].strip() for line in reversed(lines[:i]) if "- name:" in line)
    assert f"{broken}:{i + 2}: rule '{rule}' should match \"Microsoft raises Xbox prices in Europe\"" in out.stdout
    text_json = json.dumps(text, ensure_ascii=False)
    assert f"{broken}:{j + 2}: rule '{rule}' should not match {text_json}" in out.stdout
    assert "2 of " in out.stdout.splitlines()[-1] and "examples failed" in out.stdout


def test_rules_test_does_not_need_the_destinations_secrets(tmp_path: Path) -> None:
    p = tmp_path / "rules.yaml"
    p.write_text(
        'notify:\n  slack: ["${SLACK_WEBHOOK_URL_NOT_SET}"]\n'
        "rules:\n  - name: r\n    any: [x]\n    examples: {match: [x], no_match: [y]}\n",
        encoding="utf-8",
    )
    out = watcher("rules", "test", rules=p)
    assert out.returncode == 0, out.stdout + out.stderr
    # an invalid file is still a configuration error (exit 2) with its line
    p.write_text("rules:\n  - name: r\n    any: ['@nobody']\n", encoding="utf-8")
    out = watcher("rules", "test", rules=p)
    assert out.returncode == 2 and f"{p}:3: unknown entity 'nobody'" in out.stderr


# --- explain ------------------------------------------------------------------------------------------------


def test_explain_text_shows_terms_amounts_near_and_first_failure() -> None:
    out = watcher(
        "rules",
        "explain",
        "--text",
        "Claude models arrive in Microsoft Foundry; Anthropic commits up to $30 billion of Azure compute",
        rules=DATA / "issue3_rules.yaml",
    )
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "MATCH big-compute-deal" in text and "amounts: USD 30,000,000,000 (up to)" in text
    assert 'near: "anthropic" … "foundry" (0 words apart)' in text  # "Foundry; Anthropic" is closest
    assert "no    gigawatt-datacentres" in text
    path = DATA / "issue3_rules.yaml"
    assert 'failed at line 20: any of ["data center", "datacenter", "データセンター"]: none of them found' in text
    assert f"nvidia-mentions ({path}:34)" in text
    assert "2 of 4 rules match" in text


# --- a database made by `watcher poll` ----------------------------------------------------------------------

RULES_V1 = """\
notify:
  hook: ["{hook}"]
defaults:
  notify: [hook]
rules:
  - name: claude-in-microsoft
    tags: [integration-roadmap]
    cooldown: 1d
    near: {{a: [claude, anthropic], b: [foundry, copilot], within: 6}}
  - name: claude-any
    tags: [integration-roadmap]
    any: [claude]
  - name: big-datacenters
    tags: [azure-supply]
    all: [data center, {{power: {{min_watts: 1e8}}}}]
"""

ITEMS_A = [
    {
        "guid": "a-1",
        "title": "Claude now available in Microsoft Foundry",
        "link": "https://anthropic.example/news/foundry",
        "published": NOW - timedelta(hours=3),
    },
    {"guid": "a-2", "title": "Xbox prices rise", "link": "https://anthropic.example/x", "published": NOW},
]
ITEMS_B = [  # a Google News search relaying the same story with its outlet
    {
        "guid": "b-1",
        "title": "Claude now available in Microsoft Foundry - Reuters",
        "link": "https://news.google.example/rss/articles/CBMi123",
        "published": NOW - timedelta(hours=1),
    },
    {
        "guid": "b-2",
        "title": "Nvidia and Microsoft build a 1 GW data center for OpenAI",
        "link": "https://news.google.example/rss/articles/CBMi456",
        "published": NOW - timedelta(hours=1),
    },
]


@pytest.fixture
def polled(tmp_path: Path, feed_server: FeedServer, webhook: WebhookReceiver) -> dict[str, Any]:
    feeds = tmp_path / "feeds.yaml"
    feeds.write_text(
        "feeds:\n"
        f"  - name: anthropic\n    url: {feed_server.add('/a.xml', make_rss(ITEMS_A))}\n    tags: [first-party]\n"
        f"  - name: google-news\n    url: {feed_server.add('/b.xml', make_rss(ITEMS_B))}\n",
        encoding="utf-8",
    )
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES_V1.format(hook=webhook.apprise_url()), encoding="utf-8")
    db = tmp_path / "w.db"
    out = watcher("poll", rules=rules, db=db, feeds=feeds)
    assert out.returncode == 0, out.stderr
    return {"feeds": feeds, "rules": rules, "db": db, "webhook": webhook}


def test_cooldown_one_alert_per_rule_and_story_across_feeds(polled: dict[str, Any]) -> None:
    hook: WebhookReceiver = polled["webhook"]
    out = watcher("hits", "--json", rules=polled["rules"], db=polled["db"], feeds=polled["feeds"])
    hits = json.loads(out.stdout)
    by_rule: dict[str, list[dict[str, Any]]] = {}
    for h in hits:
        by_rule.setdefault(h["rule"], []).append(h)
    # both feeds' copies are stored as hits of both rules, with the same story key
    assert len(by_rule["claude-in-microsoft"]) == 2 and len(by_rule["claude-any"]) == 2
    assert {h["story"] for h in by_rule["claude-any"]} == {"t:claude now available in microsoft foundry"}
    assert all(isinstance(h["entry_id"], int) for h in hits)
    # three alerts for the story: the cooled rule once, the other rule twice; one for the data center
    received = hook.wait_for(4)
    titles = sorted(r.body["title"] for r in received)
    assert sum(t.startswith("claude-in-microsoft:") for t in titles) == 1, titles
    assert sum(t.startswith("claude-any:") for t in titles) == 2, titles
    # the figures that made a rule match travel with the hit and the alert
    (dc,) = by_rule["big-datacenters"]
    assert dc["details"] == {"amounts": ["1,000,000,000 W (1 GW)"]}
    (alert,) = [r.body for r in received if r.body["title"].startswith("big-datacenters:")]
    assert "Amounts: 1,000,000,000 W (1 GW)" in alert["message"]


def test_explain_a_stored_entry(polled: dict[str, Any]) -> None:
    hits = json.loads(watcher("hits", "--json", rules=polled["rules"], db=polled["db"]).stdout)
    entry_id = next(h["entry_id"] for h in hits if h["feed"] == "anthropic" and h["rule"] == "claude-in-microsoft")
    out = watcher("rules", "explain", "--entry", str(entry_id), rules=polled["rules"], db=polled["db"])
    assert out.returncode == 0, out.stderr
    assert f'entry {entry_id}: "Claude now available in Microsoft Foundry"' in out.stdout
    assert "stored hits: claude-any, claude-in-microsoft" in out.stdout
    assert "MATCH claude-in-microsoft" in out.stdout
    out = watcher("rules", "explain", "--entry", "999999", rules=polled["rules"], db=polled["db"])
    assert out.returncode == 2 and "no entry 999999" in out.stderr


def db_state(db: Path) -> tuple[str, Any]:
    store = Store.open(str(db), create=False)
    try:
        counts = store.counts()
    finally:
        store.close()
    return hashlib.sha256(db.read_bytes()).hexdigest(), counts


def test_backtest_shows_the_diff_and_writes_nothing(polled: dict[str, Any]) -> None:
    rules: Path = polled["rules"]
    # the edit: the near rule also counts "data center" with Microsoft; claude-any now needs "foundry" too
    rules.write_text(
        rules.read_text()
        .replace("b: [foundry, copilot]", "b: [foundry, copilot, data center]")
        .replace("a: [claude, anthropic]", "a: [claude, anthropic, microsoft]")
        .replace("any: [claude]", "all: [claude, copilot]"),
        encoding="utf-8",
    )
    before = db_state(polled["db"])
    out = watcher("rules", "backtest", "--since", "30d", rules=rules, db=polled["db"], feeds=polled["feeds"])
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith(f"backtest of {rules} on 4 stored entries since 30d: 1 would match now, 2 would no")
    assert any(x.startswith("+ claude-in-microsoft") and "Nvidia and Microsoft build" in x for x in lines)
    assert sum(x.startswith("- claude-any") for x in lines) == 2
    assert out.stderr == ""  # not a terminal: no progress bar

    js = json.loads(watcher("rules", "backtest", "--rule", "claude-any", "--json", rules=rules, db=polled["db"]).stdout)
    assert js["entries"] == 4 and js["new"] == [] and {c["rule"] for c in js["gone"]} == {"claude-any"}
    assert all(c["stored_version"] != c["current_version"] for c in js["gone"])
    assert db_state(polled["db"]) == before  # nothing written
    assert len(polled["webhook"].received) == 4  # nothing sent


def test_backtest_without_a_database(tmp_path: Path) -> None:
    out = watcher("rules", "backtest", rules=DATA / "issue3_rules.yaml", db=tmp_path / "none.db")
    assert out.returncode == 3 and "no database at" in out.stderr
    assert not (tmp_path / "none.db").exists()


def test_backtest_draws_a_progress_bar_on_a_terminal(tmp_path: Path) -> None:
    db = tmp_path / "big.db"
    store = Store.open(str(db))
    try:
        state = store.sync_feeds([("f", "https://e/feed")], NOW)["f"]
        entries = [Entry(key=str(i), title=f"Claude story {i}", link="", published=NOW) for i in range(2500)]
        store.record_poll(
            PollWrite(state.feed_id, NOW, "https://e/feed", 200, None, None, "F", entries, {}, alert_cutoff=None)
        )
    finally:
        store.close()
    master, slave = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHER_")}
    cmd = [sys.executable, "-m", "watcher", "--rules", str(DATA / "issue3_rules.yaml"), "--db", str(db)]
    proc = subprocess.Popen([*cmd, "rules", "backtest"], stdout=subprocess.PIPE, stderr=slave, env=env, text=True)
    os.close(slave)
    stdout, _ = proc.communicate(timeout=120)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the other side is closed
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    bar = b"".join(chunks).decode()
    assert proc.returncode == 0
    assert "\rbacktest [" in bar and "100%" in bar and "2,500/2,500" in bar
    assert "on 2,500 stored entries" in stdout


def test_progress_bar_rules() -> None:
    class Tty:
        def __init__(self, tty: bool) -> None:
            self.tty, self.text = tty, ""

        def isatty(self) -> bool:
            return self.tty

        def write(self, s: str) -> int:
            self.text += s
            return len(s)

        def flush(self) -> None:
            pass

    assert wanted(Tty(True), 5000) and not wanted(Tty(False), 5000) and not wanted(Tty(True), 10)  # type: ignore[arg-type]
    clock = iter([0.0, 0.05, 0.1, 1.0, 2.0, 2.0]).__next__
    out = Tty(True)
    bar = Progress(100, out, label="x", width=10, interval=0.5, clock=clock)  # type: ignore[arg-type]
    bar.advance(10)  # first call draws (t=0.05)
    bar.advance(10)  # t=0.1: too soon, no redraw
    bar.advance(80)  # t=1.0: done, drawn
    bar.close()  # t=2.0
    frames = out.text.split("\r")[1:]
    assert len(frames) == 3 and frames[-1].endswith("\n")
    assert frames[0].startswith("x [#.........]  10%  10/100")
    assert frames[1].startswith("x [##########] 100%  100/100")
