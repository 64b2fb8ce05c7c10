"""Crash safety: a real `watcher run` killed with SIGKILL at random points of its polls and deliveries, many times.

Each round, new matching items appear in the feeds, a daemon starts, and once it is up it is killed after a
random delay (seeded: the run is reproducible) that lands in a poll, a delivery or the idle time between them.
A final daemon then runs to completion. A real SMTP server (AUTH + STARTTLS) and a real webhook receiver count
what arrived:

* every alert arrived at both (nothing lost, whatever the kill interrupted);
* duplicates come only from the documented window between a successful send and its record: at most one send
  in flight per destination when the process dies, so at most 2 per kill here (in practice, rarely any).
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from servers import FeedServer, SmtpServer, TlsCert, WebhookReceiver, make_rss

KILLS = 20
SEED = 20251118

FEEDS = """\
defaults:
  interval: 1s
  start_offset: 0s
  timeout: 3s
feeds:
{feeds}
"""

RULES = """\
notify:
  mail: ["{mail}"]
  hook: ["{hook}"]
rules:
  - name: deal
    notify: [mail, hook]
    any: [billion]
"""


def start(tmp: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHER_")}
    cmd = [sys.executable, "-m", "watcher", "--feeds", str(tmp / "feeds.yaml"), "--rules", str(tmp / "rules.yaml")]
    cmd += ["--db", str(tmp / "w.db"), "run"]
    with log.open("wb") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)


def wait_for_text(log: Path, text: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in log.read_text(errors="replace"):
            return True
        time.sleep(0.02)
    return False


def counts(db: Path) -> dict[str, int]:
    if not db.exists():
        return {}
    con = sqlite3.connect(db, timeout=10)
    try:
        return dict(con.execute("select state, count(*) from alerts group by state").fetchall())
    finally:
        con.close()


@pytest.mark.slow
def test_sigkill_at_random_points_loses_no_alert(
    tmp_path: Path, feed_server: FeedServer, tls_cert: TlsCert, webhook: WebhookReceiver
) -> None:
    rng = random.Random(SEED)
    paths = ["/a.xml", "/b.xml", "/c.xml"]
    items: dict[str, list[dict[str, object]]] = {p: [] for p in paths}
    urls = [feed_server.add(p, make_rss([])) for p in paths]
    (tmp_path / "feeds.yaml").write_text(
        FEEDS.format(feeds="\n".join(f"  - name: feed{i}\n    url: {u}" for i, u in enumerate(urls)))
    )
    titles: list[str] = []
    stats = Counter[str]()
    started = time.monotonic()
    with SmtpServer(auth=("alertuser", "kill-test-pw"), tls_cert=tls_cert) as smtp:
        (tmp_path / "rules.yaml").write_text(RULES.format(mail=smtp.apprise_url(), hook=webhook.apprise_url()))
        for k in range(KILLS):
            for _ in range(rng.randint(2, 5)):  # new items for this round, on random feeds
                path = rng.choice(paths)
                title = f"Item {len(titles)}: a $1 billion compute deal"
                titles.append(title)
                items[path].insert(0, {"guid": f"g{len(titles)}", "title": title, "published": datetime.now(UTC)})
                feed_server.add(path, make_rss(items[path]))
            before = counts(tmp_path / "w.db")
            log = tmp_path / f"run{k}.log"
            proc = start(tmp_path, log)
            try:
                assert wait_for_text(log, "watcher running", 60), log.read_text()
                time.sleep(rng.uniform(0.0, 1.2))
            finally:
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=30)
            after = counts(tmp_path / "w.db")
            sent_now = after.get("sent", 0) - before.get("sent", 0)
            stats["kills"] += 1
            stats["kills that left alerts pending"] += after.get("pending", 0) > 0
            stats["kills in the middle of a delivery (some sent, some pending)"] += (
                sent_now > 0 and after.get("pending", 0) > 0
            )
            stats["kills before every new item was stored"] += sum(after.values()) < len(titles) * 2
        # the last start runs until everything is delivered, then stops cleanly
        expected = len(titles) * 2
        log = tmp_path / "final.log"
        proc = start(tmp_path, log)
        try:
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                c = counts(tmp_path / "w.db")
                if c.get("sent", 0) == expected and len(smtp.messages) >= len(titles):
                    break
                time.sleep(0.1)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
        mails = Counter(str(m["subject"]).removeprefix("deal: ") for m in smtp.messages)
        hooks = Counter(r.body["title"].removeprefix("deal: ") for r in webhook.received)
        assert all(e.tls and e.login == "alertuser" for e in smtp.envelopes)
    took = time.monotonic() - started

    missing = [(t, ch) for t in titles for ch, got in (("mail", mails), ("hook", hooks)) if got[t] == 0]
    duplicates = sum(n - 1 for n in mails.values() if n > 1) + sum(n - 1 for n in hooks.values() if n > 1)
    print(
        f"\nkill test: {stats['kills']} SIGKILLs in {took:.1f}s (seed {SEED}); {len(titles)} items -> "
        f"{expected} alerts expected; arrived: {sum(mails.values())} mails, {sum(hooks.values())} webhooks; "
        f"missing {len(missing)}, duplicates {duplicates}; "
        + "; ".join(f"{k}: {v}" for k, v in stats.items() if k != "kills")
    )
    assert not missing, f"alerts lost: {missing[:10]}"
    assert set(mails) <= set(titles) and set(hooks) <= set(titles)
    assert duplicates <= 2 * stats["kills"], f"{duplicates} duplicates for {stats['kills']} kills"
    assert counts(tmp_path / "w.db") == {"sent": expected}
    con = sqlite3.connect(tmp_path / "w.db")
    try:
        assert con.execute("pragma integrity_check").fetchone()[0] == "ok"
    finally:
        con.close()
    assert stats["kills that left alerts pending"] >= 1, stats  # kills did land between a poll and its delivery
