"""Feed health: the conditions (pure), one operational alert per change (real store, real server, real
webhook), surviving restarts, and the `watcher feeds` view of a run where feeds fail, back off and recover.

Hours and days pass on an injected clock (tests/polling.py); nothing sleeps.
"""

from __future__ import annotations

import asyncio
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from polling import Clock, feed, harness
from servers import FeedServer, WebhookReceiver, make_rss

from watcher.cli import main
from watcher.config import CONSOLE, Destination, Secret, load_config
from watcher.errors import ConfigError
from watcher.fetch import HttpFetcher
from watcher.health import (
    DISABLED,
    FAILING,
    SILENT,
    HealthMonitor,
    HealthSettings,
    condition,
    display_state,
    health_settings,
    ops_destinations,
    transitions,
)
from watcher.models import FeedHealth
from watcher.notify import Deliverer
from watcher.pipeline import Pipeline
from watcher.scheduler import Daemon
from watcher.store import Store

T0 = datetime(2026, 11, 20, 0, 0, tzinfo=UTC)
SETTINGS = HealthSettings()
CONSOLE_DEST = [Destination(CONSOLE)]


def items(n: int, start: datetime, every: timedelta) -> list[dict[str, Any]]:
    return [{"guid": f"g{i}", "title": f"item {i}", "published": start + i * every} for i in range(n)]


# --- pure conditions ------------------------------------------------------------------------------------------


def health(**kw: Any) -> FeedHealth:
    base: dict[str, Any] = {"feed_id": 1, "name": "f", "url": "http://x/f", "last_success_at": T0}
    return FeedHealth(**{**base, **kw})


def test_failing_only_past_the_threshold() -> None:
    h = health(consecutive_failures=5, failing_since=T0)
    assert condition(h, T0 + timedelta(hours=23), SETTINGS) is None
    assert display_state(h, T0 + timedelta(hours=23), SETTINGS) == "backing off"
    assert condition(h, T0 + timedelta(hours=24), SETTINGS) == FAILING


def test_disabled_wins() -> None:
    h = health(consecutive_failures=1, failing_since=T0 - timedelta(days=3), gone_at=T0)
    assert condition(h, T0, SETTINGS) == DISABLED


def test_silence_needs_a_daily_publisher() -> None:
    daily = health(first_entry_at=T0, last_entry_at=T0 + timedelta(days=2), new_entries=8)  # every 6 h
    assert condition(daily, T0 + timedelta(days=4, hours=23), SETTINGS) is None
    assert condition(daily, T0 + timedelta(days=5), SETTINGS) == SILENT
    weekly = health(first_entry_at=T0, last_entry_at=T0 + timedelta(days=21), new_entries=3)
    assert condition(weekly, T0 + timedelta(days=40), SETTINGS) is None
    too_little = health(first_entry_at=T0, last_entry_at=T0 + timedelta(hours=2), new_entries=2)
    assert condition(too_little, T0 + timedelta(days=10), SETTINGS) is None


def test_silence_is_not_news_while_failing_but_is_not_lifted_by_a_failure() -> None:
    base = {"first_entry_at": T0, "last_entry_at": T0 + timedelta(days=2), "new_entries": 8}
    failing = health(**base, consecutive_failures=2, failing_since=T0 + timedelta(days=4, hours=20))
    assert condition(failing, T0 + timedelta(days=5), SETTINGS) is None
    alerted = health(**base, consecutive_failures=2, failing_since=T0 + timedelta(days=5), health_alert=SILENT)
    assert condition(alerted, T0 + timedelta(days=5, hours=2), SETTINGS) == SILENT


def test_transitions_only_on_change() -> None:
    now = T0 + timedelta(days=2)
    rows = [
        health(feed_id=1, name="a", consecutive_failures=3, failing_since=T0),
        health(feed_id=2, name="b", consecutive_failures=3, failing_since=T0, health_alert=FAILING),
        health(feed_id=3, name="c", health_alert=FAILING),
        health(feed_id=4, name="d"),
    ]
    got = {t.feed: (t.old, t.new) for t in transitions(rows, now, SETTINGS)}
    assert got == {"a": (None, FAILING), "c": (FAILING, None)}
    assert {t.feed for t in transitions(rows, now, SETTINGS, only={"c", "d"})} == {"c"}


def test_messages_clean_untrusted_text() -> None:
    h = health(consecutive_failures=2, failing_since=T0, last_error="bad\r\nBcc: x@y\x00 page")
    (t,) = transitions([h], T0 + timedelta(days=2), SETTINGS)
    assert "\x00" not in t.message.body and "\nBcc" not in t.message.body
    assert t.message.title == "[watcher] feed f failing for 2d"


# --- alerts against real servers -------------------------------------------------------------------------------


async def poll_until(h: Any, f: Any, monitor: HealthMonitor, until: datetime) -> list[str]:
    """Poll `f` whenever it is due (every interval, or at the end of its hold) and check health after each
    poll, up to `until`; return the titles of the alerts sent."""
    titles = []
    while h.clock() < until:
        r = await h.poll(f)
        titles += [t.message.title for t in await monitor.check()]
        due = r.next_poll_at if r.next_poll_at is not None else h.clock() + timedelta(seconds=f.interval)
        h.clock.to(min(max(due, h.clock() + timedelta(seconds=1)), until))
    return titles


def test_one_alert_when_failing_past_the_threshold_and_one_on_recovery(tmp_path: Path, feed_server: FeedServer) -> None:
    url = feed_server.add("/f.xml", b"oops", status=500)
    f = feed("wire", url, interval=1800)
    out = io.StringIO()

    async def go() -> None:
        clock = Clock(T0)
        async with harness(tmp_path / "w.db", clock) as h:
            monitor = HealthMonitor(h.store, CONSOLE_DEST, SETTINGS, now=clock, console=out)
            assert await poll_until(h, f, monitor, T0 + timedelta(hours=23)) == []
            titles = await poll_until(h, f, monitor, T0 + timedelta(days=3))
            assert titles == ["[watcher] feed wire failing for 1d"] or titles[0].startswith(
                "[watcher] feed wire failing"
            )
            assert len(titles) == 1
            # a restart: a new monitor on the same database remembers the alert
            again = HealthMonitor(h.store, CONSOLE_DEST, SETTINGS, now=clock, console=out)
            assert await again.check() == []
            feed_server.add("/f.xml", make_rss(items(2, T0, timedelta(hours=1))))
            assert await poll_until(h, f, again, T0 + timedelta(days=4)) == ["[watcher] feed wire recovered"]
            assert await again.check() == []

    asyncio.run(go())
    printed = out.getvalue()
    assert printed.count("=== ALERT [watcher] feed wire failing for") == 1
    assert "Last error: HTTP 500" in printed and "Next poll:" in printed
    assert printed.count("=== ALERT [watcher] feed wire recovered") == 1


def test_silence_alert_and_publishing_again(tmp_path: Path, feed_server: FeedServer) -> None:
    url = feed_server.add("/f.xml", make_rss(items(3, T0 - timedelta(days=1), timedelta(hours=1))))
    f = feed("daily", url, interval=3600)
    out = io.StringIO()

    async def go() -> None:
        clock = Clock(T0)
        async with harness(tmp_path / "w.db", clock) as h:
            monitor = HealthMonitor(h.store, CONSOLE_DEST, SETTINGS, now=clock, console=out)
            await h.poll(f)  # the backlog: does not count towards the publishing rate
            n = 3
            for _ in range(4):  # a new entry every 6 hours for a day
                clock.advance(hours=6)
                n += 1
                feed_server.add("/f.xml", make_rss(items(n, T0 - timedelta(days=1), timedelta(hours=1))))
                await h.poll(f)
                assert await monitor.check() == []
            last_entry = clock()
            titles = await poll_until(h, f, monitor, last_entry + timedelta(days=3, hours=2))
            assert titles == ["[watcher] feed daily silent for 3d"]
            assert await poll_until(h, f, monitor, clock() + timedelta(days=2)) == []  # once, not per poll
            feed_server.add("/f.xml", make_rss(items(n + 1, T0 - timedelta(days=1), timedelta(hours=1))))
            titles = await poll_until(h, f, monitor, clock() + timedelta(hours=1, seconds=1))
            assert titles == ["[watcher] feed daily publishing again"]

    asyncio.run(go())
    assert "usually publishes every 6h" in out.getvalue()


def test_410_alerts_disabled_at_once(tmp_path: Path, feed_server: FeedServer) -> None:
    url = feed_server.add("/gone", b"", status=410)
    out = io.StringIO()

    async def go() -> None:
        clock = Clock(T0)
        async with harness(tmp_path / "w.db", clock) as h:
            monitor = HealthMonitor(h.store, CONSOLE_DEST, SETTINGS, now=clock, console=out)
            await h.poll(feed("old-blog", url))
            assert [t.new for t in await monitor.check()] == [DISABLED]
            clock.advance(days=2)
            assert await monitor.check() == []

    asyncio.run(go())
    assert "feed old-blog disabled: 410 Gone" in out.getvalue()


def test_alerts_go_to_a_webhook_and_a_failed_delivery_is_retried(
    tmp_path: Path, feed_server: FeedServer, webhook: WebhookReceiver
) -> None:
    url = feed_server.add("/gone", b"", status=410)
    dest = [Destination("ops", (Secret(webhook.apprise_url(), "ops[0] (json://)"),))]

    async def go() -> None:
        clock = Clock(T0)
        async with harness(tmp_path / "w.db", clock) as h:
            monitor = HealthMonitor(h.store, dest, SETTINGS, now=clock)
            await h.poll(feed("old-blog", url))
            webhook.fail_next(1, status=500)
            assert await monitor.check() == []  # not accepted: not remembered
            assert [t.new for t in await monitor.check()] == [DISABLED]
            assert await monitor.check() == []

    asyncio.run(go())
    (received,) = webhook.wait_for(1)
    assert received.body["title"] == "[watcher] feed old-blog disabled: 410 Gone"
    assert "410 Gone" in received.body["message"]


# --- configuration ---------------------------------------------------------------------------------------------


def write_config(tmp: Path, defaults: str, rules: str = "rules: []\n") -> tuple[Path, Path]:
    feeds = tmp / "feeds.yaml"
    feeds.write_text(f"defaults:\n{defaults}feeds:\n  - url: http://127.0.0.1:9/f\n", encoding="utf-8")
    rules_path = tmp / "rules.yaml"
    rules_path.write_text(rules, encoding="utf-8")
    return feeds, rules_path


def test_ops_notify_names_a_destination_of_rules_yaml(tmp_path: Path) -> None:
    feeds, rules = write_config(tmp_path, "  interval: 5m\n  ops_notify: [slak]\n", "notify:\n  slack: [json://h/x]\n")
    with pytest.raises(ConfigError) as e:
        load_config(feeds, rules)
    (issue,) = e.value.issues
    assert str(issue).startswith(f"{feeds}:3: ops_notify in defaults names 'slak'")
    assert "did you mean 'slack'?" in str(issue)


def test_health_and_politeness_keys_load(tmp_path: Path) -> None:
    feeds, rules = write_config(
        tmp_path,
        "  ops_notify: slack\n  alert_failing_after: 12h\n  alert_silent_after: 2d\n"
        "  max_backoff: 2h\n  max_cache_wait: 1h\n",
        "notify:\n  slack: [json://h/x]\n",
    )
    cfg = load_config(feeds, rules)
    d = cfg.feeds.defaults
    assert (d.ops_notify, d.alert_failing_after, d.alert_silent_after) == (("slack",), 12 * 3600, 2 * 86400)
    assert (cfg.feeds.feeds[0].max_backoff, cfg.feeds.feeds[0].max_cache_wait) == (7200, 3600)
    default = load_config(*write_config(tmp_path, "  interval: 5m\n"))
    assert default.feeds.defaults.ops_notify == (CONSOLE,)


def test_max_backoff_below_a_second_is_an_error(tmp_path: Path) -> None:
    feeds, rules = write_config(tmp_path, "  max_backoff: 0s\n")
    with pytest.raises(ConfigError, match=r"feeds.yaml:2: 'max_backoff' in defaults must be at least 1s"):
        load_config(feeds, rules)


# --- `watcher feeds` after a run where feeds fail, back off and recover -------------------------------------------

SCENARIO_FEEDS = ("steady", "flaky", "broken", "recovered", "gone", "moved", "quiet")


async def run_scenario(tmp: Path, server: FeedServer, end: datetime, out: io.StringIO) -> list[str]:
    """Five days of polls every 2 hours, ending at `end`, with feeds that misbehave on cue (see the comments).

    Returns the health alerts sent, in order.
    """
    start = end - timedelta(days=5)
    urls = {
        name: server.add(f"/{name}.xml", make_rss(items(5, start - timedelta(days=2), timedelta(hours=5))))
        for name in SCENARIO_FEEDS
    }
    server.add("/moved-new.xml", make_rss(items(5, start - timedelta(days=2), timedelta(hours=5))))
    lines = ["defaults:", "  interval: 2h", "  timeout: 2s", "  deadline: 5s", "feeds:"]
    lines += [f"  - name: {n}\n    url: {u}" for n, u in urls.items()]
    (tmp / "feeds.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (tmp / "rules.yaml").write_text("rules: []\n", encoding="utf-8")
    feeds = load_config(tmp / "feeds.yaml", tmp / "rules.yaml").feeds.feeds
    clock = Clock(start)
    alerts: list[str] = []
    async with harness(tmp / "watcher.db", clock) as h:
        monitor = HealthMonitor(h.store, CONSOLE_DEST, SETTINGS, now=clock, console=out)
        tick = 0
        while clock() < end:
            hours = tick * 2
            if hours % 6 == 0:  # steady publishes every 6 h; quiet too, but only on its first day
                n = 5 + hours // 6
                server.add("/steady.xml", make_rss(items(n, start - timedelta(days=2), timedelta(hours=5))))
                if hours <= 24:
                    server.add("/quiet.xml", make_rss(items(n, start - timedelta(days=2), timedelta(hours=5))))
            if hours == 24:  # recovered: fails for two days...
                server.behave("/recovered.xml", status=500)
            if hours == 72:  # ... and comes back
                server.behave("/recovered.xml", status=200)
            if hours == 84:  # broken: fails from day 3.5 on (36 h before the end)
                server.behave("/broken.xml", status=500)
            if hours == 96:  # gone: the publisher removed it
                server.behave("/gone.xml", status=410)
            if hours == 100:  # moved: permanently redirected from day 4 + 4 h on
                server.behave("/moved.xml", redirect_to="/moved-new.xml", redirect_status=301)
            if hours == 116:  # flaky: rate-limited near the end, asking for 3 h
                server.behave("/flaky.xml", status=429, retry_after="10800")
            await h.pipeline.poll_many(feeds)
            alerts += [t.message.title for t in await monitor.check()]
            tick += 1
            clock.to(min(start + timedelta(hours=2 * tick), end))
    return alerts


def feeds_output(tmp: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> str:
    capsys.readouterr()
    args = ["--feeds", str(tmp / "feeds.yaml"), "--rules", str(tmp / "rules.yaml"), "--db", str(tmp / "watcher.db")]
    assert main([*args, "feeds", *extra]) == 0
    return capsys.readouterr().out


def test_watcher_feeds_after_failures_backoff_and_recovery(
    tmp_path: Path, feed_server: FeedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    end = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)  # `watcher feeds` reads the real clock
    out = io.StringIO()
    alerts = asyncio.run(run_scenario(tmp_path, feed_server, end, out))
    assert alerts == [
        "[watcher] feed recovered failing for 1d",
        "[watcher] feed recovered recovered",
        "[watcher] feed gone disabled: 410 Gone",
        "[watcher] feed quiet silent for 3d",
        "[watcher] feed broken failing for 1d",
    ], alerts
    rows = {r["name"]: r for r in json.loads(feeds_output(tmp_path, capsys, "--json"))}
    states = {name: r["state"] for name, r in rows.items()}
    assert states == {
        "steady": "ok",
        "flaky": "backing off",
        "broken": "failing",
        "recovered": "ok",
        "gone": "disabled",
        "moved": "moved",
        "quiet": "silent",
    }
    assert rows["flaky"]["next_poll_reason"] == "retry-after" and rows["flaky"]["http_status"] == 429
    assert rows["broken"]["consecutive_failures"] >= 5 and rows["broken"]["next_poll_reason"] == "backoff"
    assert rows["moved"]["moved_to"] == feed_server.url_for("/moved-new.xml")
    assert rows["gone"]["disabled_at"] and rows["gone"]["next_poll_reason"] == "gone"
    assert rows["steady"]["mean_entry_interval"] == pytest.approx(6 * 3600, rel=0.05)
    assert rows["recovered"]["consecutive_failures"] == 0 and rows["recovered"]["health_alert"] is None
    for key in ("last_success", "next_poll", "entries", "hits", "failing_since"):
        assert key in rows["steady"]
    table = feeds_output(tmp_path, capsys)
    lines = {line.split()[0]: line for line in table.splitlines()[2:]}
    assert "failing since" in lines["broken"] and "(backoff)" in lines["broken"]
    assert "backing off" in lines["flaky"] and "(retry-after)" in lines["flaky"]
    assert "disabled since" in lines["gone"] and "moved to http://" in lines["moved"]
    assert "silent since" in lines["quiet"] and lines["steady"].split()[1] == "ok"
    for header in ("state", "last success", "last status", "failures", "next poll", "new entry every", "entries"):
        assert header in table.splitlines()[0]
    print(table)  # the sample in the closing note: pytest -s -k watcher_feeds_after


def test_the_daemon_checks_health_on_a_timer(tmp_path: Path, feed_server: FeedServer) -> None:
    url = feed_server.add("/gone", b"", status=410)
    feeds, rules = tmp_path / "feeds.yaml", tmp_path / "rules.yaml"
    feeds.write_text(f"defaults:\n  interval: 1h\n  start_offset: 0s\nfeeds:\n  - name: old-blog\n    url: {url}\n")
    rules.write_text("rules: []\n")
    config = load_config(feeds, rules)
    out = io.StringIO()

    async def go() -> None:
        store = Store.open(str(tmp_path / "w.db"))
        async with HttpFetcher(user_agent="watcher-test/1") as fetcher:
            pipeline = Pipeline(store, fetcher, lambda: config.rules.rules)
            health = HealthMonitor(store, ops_destinations(config), health_settings(config), console=out)
            deliverer = Deliverer(store, config.rules.destinations, console=io.StringIO())
            daemon = Daemon(config, pipeline, deliverer, load_config=lambda: config, health=health, health_interval=0.2)
            task = asyncio.create_task(daemon.run())
            try:
                for _ in range(200):
                    if "disabled: 410 Gone" in out.getvalue():
                        break
                    await asyncio.sleep(0.05)
            finally:
                daemon.request_stop()
                await task
                pipeline.close()
                store.close()

    asyncio.run(go())
    assert out.getvalue().count("=== ALERT [watcher] feed old-blog disabled: 410 Gone") == 1
