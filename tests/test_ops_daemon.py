"""Operations through real processes: `watcher run --http` scraped over HTTP (/healthz, /metrics), JSON logs
without secrets, `watcher status`, `watcher health`."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from servers import FeedServer, WebhookReceiver, make_rss

from watcher.cli import main

NOW = datetime.now(UTC)
FEEDS = """\
defaults:
  interval: 1s
  start_offset: 0s
  timeout: 2s
  deadline: 5s
feeds:
  - name: wire
    url: {url}
"""
RULES = "rules:\n  - name: deal\n    tags: [compute-contracts]\n    any: [billion]\n"


def wait_until(pred, timeout: float = 30.0, what: str = "") -> Any:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


class Daemon:
    """`python -m watcher ... run --http 127.0.0.1:0` with its stderr in a file (the port is read from it)."""

    def __init__(self, tmp: Path, feeds: str, rules: str, *extra: str, global_opts: tuple[str, ...] = ()) -> None:
        self.tmp = tmp
        (tmp / "feeds.yaml").write_text(feeds, encoding="utf-8")
        (tmp / "rules.yaml").write_text(rules, encoding="utf-8")
        self.err_path = tmp / "daemon.err"
        self.out_path = tmp / "daemon.out"
        with self.out_path.open("w") as out, self.err_path.open("w") as err:  # the child keeps its own copies
            self.proc = subprocess.Popen(
                [*self.cli(*global_opts), "run", "--http", "127.0.0.1:0", *extra],
                stdout=out,
                stderr=err,
                env=self.env(),
            )
        found = wait_until(lambda: re.search(r"listening on http://127\.0\.0\.1:(\d+)", self.err()), what="the port")
        self.port = int(found.group(1))

    def env(self) -> dict[str, str]:
        return {k: v for k, v in os.environ.items() if not k.startswith("WATCHER_")}

    def cli(self, *global_opts: str) -> list[str]:
        t = self.tmp
        return [
            sys.executable,
            "-m",
            "watcher",
            "--feeds",
            str(t / "feeds.yaml"),
            "--rules",
            str(t / "rules.yaml"),
            "--db",
            str(t / "w.db"),
            *global_opts,
        ]

    def err(self) -> str:
        return self.err_path.read_text(encoding="utf-8")

    def get(self, path: str) -> tuple[int, str, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=10) as r:
                return r.status, r.headers["Content-Type"], r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.headers["Content-Type"], e.read().decode()

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.cli(), *args], capture_output=True, text=True, timeout=60, env=self.env())

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(20)


def metrics(text: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


def test_healthz_and_metrics_over_http(
    tmp_path: Path, feed_server: FeedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    url = feed_server.add("/rss.xml", make_rss([{"guid": "1", "title": "Nvidia $10 billion deal", "published": NOW}]))
    d = Daemon(tmp_path, FEEDS.format(url=url), RULES)
    try:
        wait_until(lambda: feed_server.count("/rss.xml") >= 3, what="three polls")
        status, ctype, body = d.get("/healthz")
        assert status == 200 and ctype == "application/json", body
        h = json.loads(body)
        assert h["status"] == "ok" and h["ok"] is True and h["last_success"] and "ago" in h["reason"]

        status, ctype, body = d.get("/metrics")
        assert status == 200 and ctype.startswith("text/plain; version=0.0.4")
        m = metrics(body)
        assert m["watcher_polls_total"][(("status", "ok"),)] >= 1
        assert m["watcher_polls_total"][(("status", "not-modified"),)] >= 1  # the later polls are 304s
        assert m["watcher_fetch_duration_seconds_count"][(("result", "not_modified"),)] >= 1
        assert m["watcher_hits"] == {(("rule", "deal"), ("watch_item", "compute-contracts")): 1}
        assert m["watcher_entries"] == {(): 1} and m["watcher_alerts"][(("state", "sent"),)] == 1
        assert m["watcher_outbox_depth"] == {(): 0} and m["watcher_feeds_in_backoff"] == {(): 0}
        assert m["watcher_feeds"][(("state", "ok"),)] == 1 and m["watcher_database_up"] == {(): 1}
        assert m["process_resident_memory_bytes"][()] > 0 and m["process_open_fds"][()] > 0
        (tmp_path / "metrics.sample.txt").write_text(body)

        assert d.get("/nope")[0] == 404
        health = d.run("health", "--http", f"127.0.0.1:{d.port}")
        assert health.returncode == 0 and '"status": "ok"' in health.stdout, health.stderr

        db = ["--feeds", str(tmp_path / "feeds.yaml"), "--db", str(tmp_path / "w.db")]
        assert main([*db, "status"]) == 0  # in-process: the daemon's database, read while it runs
        text = capsys.readouterr().out
        assert "1 enabled: 1 ok, 0 failing, 0 backing off, 0 disabled (410), 0 never polled" in text
        assert "hits today    1 (compute-contracts 1)" in text and "0 pending" in text and "1 sent" in text
        (tmp_path / "status.sample.txt").write_text(text)
        assert main([*db, "status", "--json"]) == 0
        as_json = json.loads(capsys.readouterr().out)
        assert as_json["hits_today"] == {"total": 1, "by_watch_item": {"compute-contracts": 1}}
        assert as_json["alerts"]["pending"] == 0 and as_json["stale"] is None
    finally:
        code = d.stop()
    assert code == 0, d.err()
    assert main(["health", "--http", f"0.0.0.0:{d.port}", "--timeout", "5"]) == 1  # stopped: exit 1, not 2
    assert "cannot reach http://127.0.0.1:" in capsys.readouterr().err


def test_healthz_is_503_with_the_reason_while_stopping(tmp_path: Path, feed_server: FeedServer) -> None:
    url = feed_server.add("/slow.xml", make_rss([{"guid": "1", "title": "slow", "published": NOW}]), delay=4)
    d = Daemon(tmp_path, FEEDS.format(url=url), RULES, "--drain-deadline", "15s")
    try:
        wait_until(lambda: feed_server.count("/slow.xml") >= 1, what="the slow poll to start")
        assert d.get("/healthz")[0] == 200  # starting: nothing polled yet, within the start window
        d.proc.send_signal(signal.SIGTERM)  # the poll in flight drains for ~4s; the endpoint answers meanwhile
        _, _, body = wait_until(lambda: (r := d.get("/healthz"))[0] == 503 and r, what="a 503")
        assert json.loads(body) == {
            "status": "stopping",
            "ok": False,
            "reason": "shutting down: no new polls, waiting for polls in flight",
        }
    finally:
        code = d.stop()
    assert code == 0, d.err()


SECRET = "S3cr3tT0kenXYZ"


def test_json_logs_one_event_per_poll_and_never_a_secret(
    tmp_path: Path, feed_server: FeedServer, webhook: WebhookReceiver
) -> None:
    url = feed_server.add("/rss.xml", make_rss([{"guid": "1", "title": "AMD $2 billion deal", "published": NOW}]))
    # a token in the password and in the path, as in a Slack webhook URL
    hook = f"json://watcher:{SECRET}@127.0.0.1:{webhook.port}/hook/{SECRET}"
    rules = f'notify:\n  team: ["{hook}"]\n' + RULES
    d = Daemon(tmp_path, FEEDS.format(url=url), rules, global_opts=("--log-level", "DEBUG", "--log-format", "json"))
    try:
        assert webhook.wait_for(1, timeout=30)[0].path == f"/hook/{SECRET}"  # it was used, not just configured
        wait_until(lambda: "alert 1 sent to team" in d.err(), what="the delivery's log line")
        wait_until(lambda: d.err().count('"event": "poll"') >= 2, what="two poll events")
    finally:
        code = d.stop()
    assert code == 0, d.err()
    err = d.err()
    assert SECRET not in err and SECRET not in d.out_path.read_text()
    events = [json.loads(line) for line in err.splitlines()]  # every line is one JSON object
    polls = [e for e in events if e.get("event") == "poll"]
    first = polls[0]
    assert {k: first[k] for k in ("feed", "status", "http", "new", "hits", "alerts", "error")} == {
        "feed": "wire",
        "status": "ok",
        "http": 200,
        "new": 1,
        "hits": 1,
        "alerts": 1,
        "error": None,
    }
    assert isinstance(first["duration"], float) and first["level"] == "INFO" and first["logger"] == "watcher.poll"
    assert any(e["level"] == "DEBUG" for e in events)  # DEBUG really was on
