"""`watcher alerts`, `watcher alerts retry`, `watcher notify test` and a hanging destination under `watcher run`,
as real subprocesses against real servers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from servers import FeedServer, SmtpServer, WebhookReceiver, make_rss

NOW = datetime.now(UTC)


class Cli:
    def __init__(self, tmp: Path, feeds: str, rules: str, env: dict[str, str] | None = None) -> None:
        self.tmp = tmp
        (tmp / "feeds.yaml").write_text(feeds)
        (tmp / "rules.yaml").write_text(rules)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHER_")} | (env or {})

    def cmd(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "watcher", "--feeds", str(self.tmp / "feeds.yaml"), "--rules",
                str(self.tmp / "rules.yaml"), "--db", str(self.tmp / "w.db"), *args]  # fmt: skip

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.cmd(*args), capture_output=True, text=True, timeout=120, env=self.env)

    def json(self, *args: str) -> Any:
        out = self.run(*args, "--json")
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)


def feeds(url: str) -> str:
    return f"defaults:\n  interval: 1s\n  start_offset: 0s\n  timeout: 2s\nfeeds:\n  - name: wire\n    url: {url}\n"


RULES = """\
notify:
  hook:
    urls: ["{hook}"]
    max_attempts: 1
  mail: ["{mail}"]
rules:
  - name: deal
    notify: [hook, mail]
    any: [billion]
"""


def test_alerts_listing_failed_and_retry(
    tmp_path: Path, feed_server: FeedServer, webhook: WebhookReceiver, smtp_server: SmtpServer
) -> None:
    url = feed_server.add("/rss.xml", make_rss([{"guid": "1", "title": "A $5 billion deal", "published": NOW}]))
    cli = Cli(tmp_path, feeds(url), RULES.format(hook=webhook.apprise_url(), mail=smtp_server.apprise_url()))
    webhook.fail_next(1, status=503)
    out = cli.run("poll")
    assert out.returncode == 0 and "1 alerts sent" in out.stderr and "1 alerts failed" in out.stderr
    (dead,) = cli.json("alerts", "--failed")
    assert dead["destination"] == "hook" and dead["state"] == "dead" and "503" in dead["last_error"]
    assert dead["targets"][0]["target"] == "hook[0] (json://)" and dead["targets"][0]["state"] == "failed"
    (sent,) = cli.json("alerts", "--sent")
    assert sent["destination"] == "mail" and sent["sent_at"]
    assert cli.json("alerts", "--pending") == []
    table = cli.run("alerts").stdout
    assert "failed (dead)" in table and "hook[0] (json://): failed" in table and "A $5 billion deal" in table
    out = cli.run("alerts", "retry")
    assert out.returncode == 0, out.stderr
    assert "retrying 1 dead-lettered and 0 pending alerts now" in out.stderr and "1 sent, 0 failed" in out.stderr
    assert [r.body["title"] for r in webhook.received] == ["deal: A $5 billion deal"]
    assert len(smtp_server.messages) == 1
    assert {r["state"] for r in cli.json("alerts")} == {"sent"}


def test_notify_test_reports_each_url(tmp_path: Path, webhook: WebhookReceiver, smtp_server: SmtpServer) -> None:
    cli = Cli(tmp_path, "feeds: []\n", RULES.format(hook=webhook.apprise_url(), mail=smtp_server.apprise_url()))
    out = cli.run("notify", "test")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "hook: hook[0] (json://): sent" in out.stdout and "mail: mail[0] (mailto://): sent" in out.stdout
    assert webhook.received[0].body["title"].startswith("watcher-test: watcher test alert")
    assert "test alert" in str(smtp_server.messages[0]["subject"])
    webhook.stop()
    out = cli.run("notify", "test", "--to", "hook")
    assert out.returncode == 1 and "hook: hook[0] (json://): FAILED" in out.stdout
    assert len(smtp_server.messages) == 1  # --to: only that destination
    out = cli.run("notify", "test", "--to", "hok")
    assert out.returncode == 2 and "no destination named 'hok' (did you mean 'hook'?)" in out.stderr


def test_a_hanging_destination_does_not_stop_polls_or_other_destinations(
    tmp_path: Path, feed_server: FeedServer, webhook: WebhookReceiver, smtp_server: SmtpServer
) -> None:
    items = [{"guid": "1", "title": "First $1 billion deal", "published": NOW}]
    url = feed_server.add("/rss.xml", make_rss(items))
    cli = Cli(tmp_path, feeds(url), RULES.format(hook=webhook.apprise_url(), mail=smtp_server.apprise_url()))
    webhook.hang_next(50, seconds=30)  # every webhook request hangs (apprise gives up after its 4 s read timeout)
    proc = subprocess.Popen(cli.cmd("run"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli.env)
    try:
        smtp_server.wait_for(1, timeout=30)
        n = feed_server.count("/rss.xml")
        items.insert(0, {"guid": "2", "title": "Second $2 billion deal", "published": NOW})
        feed_server.add("/rss.xml", make_rss(items))
        smtp_server.wait_for(2, timeout=15)  # delivered while the webhook still hangs
        deadline = time.monotonic() + 15
        while feed_server.count("/rss.xml") < n + 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert feed_server.count("/rss.xml") >= n + 3  # polls went on
        assert not webhook.received
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "alert 1 to hook failed" in err
