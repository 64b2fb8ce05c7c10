"""Politeness against a real HTTP server: Retry-After, backoff, caching headers and <ttl>, redirects, 410, 404.

The clock and the jitter are injected (tests/polling.py): hours pass by setting the clock, not by sleeping.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
from polling import Clock, feed, harness
from servers import FeedServer, make_rss

from watcher.models import FeedState, Freshness
from watcher.policy import MOVE_AFTER, Limits, Outcome, backoff_delay, decide, held_until

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
RSS = make_rss([{"guid": "1", "title": "hello"}])


def seconds_until(when: datetime | None, now: datetime) -> float:
    assert when is not None
    return (when - now).total_seconds()


# --- the pure policy --------------------------------------------------------------------------------------------


def test_backoff_doubles_with_jitter_and_is_capped() -> None:
    limits = Limits(interval=60, max_backoff=3600)
    rng = random.Random(1)
    delays = [backoff_delay(n, limits, rng) for n in range(1, 12)]
    for n, d in enumerate(delays, start=1):
        base = min(3600, 60 * 2 ** (n - 1))
        assert 0.8 * base <= d <= base, (n, d)
    assert all(b > a for a, b in itertools.pairwise(delays[:6]))  # grows until the cap
    assert max(delays) <= 3600
    assert backoff_delay(10_000, limits, rng) <= 3600  # no overflow, still capped


def test_a_failure_keeps_the_redirect_streak_and_a_plain_success_ends_it() -> None:
    state = FeedState(1, "f", "http://a/feed", redirect_target="http://b/feed", redirect_count=2)
    limits = Limits(interval=60)
    failed = decide(state, Outcome(ok=False, http_status=500), T0, limits, random.Random(0))
    assert (failed.redirect_target, failed.redirect_count) == ("http://b/feed", 2)
    plain = decide(state, Outcome(ok=True), T0, limits, random.Random(0))
    assert (plain.redirect_target, plain.redirect_count, plain.move_to) == (None, 0, None)
    third = decide(state, Outcome(ok=True, moved_to="http://b/feed"), T0, limits, random.Random(0))
    assert third.move_to == "http://b/feed" and MOVE_AFTER == 3


def test_interval_never_holds_a_feed_but_a_backoff_does() -> None:
    s = FeedState(1, "f", "u", next_poll_at=T0 + timedelta(minutes=10), next_poll_reason="interval")
    assert held_until(s, T0) is None
    s = FeedState(1, "f", "u", next_poll_at=T0 + timedelta(minutes=10), next_poll_reason="backoff")
    assert held_until(s, T0) == T0 + timedelta(minutes=10)
    assert held_until(s, T0 + timedelta(minutes=9, seconds=45)) is None  # within the slack: due


def test_larger_of_max_age_and_ttl_wins_within_the_cap() -> None:
    state = FeedState(1, "f", "u")
    limits = Limits(interval=600, max_cache_wait=7200)
    d = decide(state, Outcome(ok=True, freshness=Freshness(1800, "max-age"), ttl=3000), T0, limits, random.Random())
    assert (seconds_until(d.next_poll_at, T0), d.next_poll_reason) == (3000, "ttl")
    d = decide(state, Outcome(ok=True, freshness=Freshness(86400 * 30, "expires")), T0, limits, random.Random())
    assert (seconds_until(d.next_poll_at, T0), d.next_poll_reason) == (7200, "expires")
    d = decide(state, Outcome(ok=True, freshness=Freshness(60, "max-age")), T0, limits, random.Random())
    assert (seconds_until(d.next_poll_at, T0), d.next_poll_reason) == (600, "interval")


# --- against a real server ----------------------------------------------------------------------------------------


def test_retry_after_seconds_is_honoured(tmp_path: Path, feed_server: FeedServer) -> None:
    url = feed_server.add("/busy", b"slow down", status=429, retry_after="7200")
    f = feed("busy", url, interval=60)

    async def go() -> None:
        clock = Clock(T0)
        async with harness(tmp_path / "w.db", clock) as h:
            r = await h.poll(f)
            assert r.status == "failed" and r.http_status == 429
            assert r.next_poll_reason == "retry-after" and seconds_until(r.next_poll_at, T0) == 7200
            clock.advance(hours=1)
            skipped = await h.poll(f)
            assert skipped.status == "skipped" and skipped.next_poll_at == T0 + timedelta(hours=2)
            assert feed_server.count("/busy") == 1  # held back: the server saw nothing
            feed_server.add("/busy", RSS)
            clock.advance(hours=1)
            ok = await h.poll(f)
            assert ok.status == "ok" and ok.next_poll_reason == "interval"
            assert h.state("busy").consecutive_failures == 0

    asyncio.run(go())


def test_retry_after_http_date_on_503(tmp_path: Path, feed_server: FeedServer) -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(hours=3), usegmt=True)
    url = feed_server.add("/maint", b"", status=503, retry_after=when)

    async def go() -> None:
        clock = Clock(T0)
        async with harness(tmp_path / "w.db", clock) as h:
            r = await h.poll(feed("maint", url))
            assert r.next_poll_reason == "retry-after"
            assert 3 * 3600 - 120 < seconds_until(r.next_poll_at, T0) <= 3 * 3600

    asyncio.run(go())


def test_retry_after_is_capped_by_max_backoff(tmp_path: Path, feed_server: FeedServer) -> None:
    url = feed_server.add("/busy", b"", status=429, retry_after=str(30 * 86400))

    async def go() -> None:
        async with harness(tmp_path / "w.db", Clock(T0)) as h:
            r = await h.poll(feed("busy", url, max_backoff=6 * 3600))
            assert seconds_until(r.next_poll_at, T0) == 6 * 3600

    asyncio.run(go())


def test_backoff_grows_is_capped_and_a_success_resets_it(tmp_path: Path, feed_server: FeedServer) -> None:
    url = feed_server.add("/flaky", b"oops", status=500)
    f = feed("flaky", url, interval=600, max_backoff=3 * 3600)

    async def go() -> None:
        clock = Clock(T0)
        async with harness(tmp_path / "w.db", clock) as h:
            delays = []
            for _ in range(8):
                r = await h.poll(f)
                assert r.status == "failed" and r.next_poll_reason == "backoff"
                delays.append(seconds_until(r.next_poll_at, clock()))
                # too early: held back without a request
                n = feed_server.count("/flaky")
                clock.advance(seconds=delays[-1] / 2)
                assert (await h.poll(f)).status == "skipped" and feed_server.count("/flaky") == n
                clock.to(r.next_poll_at)
            assert all(b > a for a, b in itertools.pairwise(delays[:5])), delays
            assert max(delays) <= 3 * 3600 and delays[-1] >= 0.8 * 3 * 3600, delays
            assert h.state("flaky").consecutive_failures == 8
            feed_server.add("/flaky", RSS)
            ok = await h.poll(f)
            assert ok.status == "ok" and ok.next_poll_reason == "interval"
            assert seconds_until(ok.next_poll_at, clock()) == 600
            s = h.state("flaky")
            assert s.consecutive_failures == 0 and s.failing_since is None
            feed_server.add("/flaky", b"oops", status=500)
            again = await h.poll(f)
            assert seconds_until(again.next_poll_at, clock()) <= 600  # the backoff starts over

    asyncio.run(go())


def test_404_and_connection_failures_back_off(tmp_path: Path, feed_server: FeedServer) -> None:
    async def go() -> None:
        clock = Clock(T0)
        async with harness(tmp_path / "w.db", clock) as h:
            missing = await h.poll(feed("missing", feed_server.url_for("/nope"), interval=60))
            assert missing.status == "failed" and missing.http_status == 404
            assert missing.next_poll_reason == "backoff"
            assert h.state("missing").consecutive_failures == 1 and h.state("missing").gone_at is None
            refused = await h.poll(feed("refused", "http://127.0.0.1:9/feed", interval=60))
            assert refused.status == "failed" and refused.next_poll_reason == "backoff"

    asyncio.run(go())


def test_cache_control_max_age_is_a_lower_bound(tmp_path: Path, feed_server: FeedServer) -> None:
    url = feed_server.add("/cached", RSS, headers={"Cache-Control": "public, max-age=3600"})
    f = feed("cached", url, interval=300)

    async def go() -> None:
        clock = Clock(T0)
        async with harness(tmp_path / "w.db", clock) as h:
            r = await h.poll(f)
            assert (r.next_poll_reason, seconds_until(r.next_poll_at, T0)) == ("max-age", 3600)
            clock.advance(minutes=30)
            assert (await h.poll(f)).status == "skipped" and feed_server.count("/cached") == 1
            clock.advance(minutes=30)
            again = await h.poll(f)  # a 304 repeats the header: still honoured
            assert again.status == "not-modified" and again.next_poll_reason == "max-age"

    asyncio.run(go())


def test_a_bad_cache_header_is_capped(tmp_path: Path, feed_server: FeedServer) -> None:
    far = format_datetime(datetime.now(UTC) + timedelta(days=365), usegmt=True)
    url = feed_server.add("/forever", RSS, headers={"Expires": far})

    async def go() -> None:
        async with harness(tmp_path / "w.db", Clock(T0)) as h:
            r = await h.poll(feed("forever", url, interval=300, max_cache_wait=2 * 3600))
            assert (r.next_poll_reason, seconds_until(r.next_poll_at, T0)) == ("expires", 2 * 3600)

    asyncio.run(go())


def test_rss_ttl_is_a_lower_bound_and_survives_a_304(tmp_path: Path, feed_server: FeedServer) -> None:
    body = RSS.replace("<channel>", "<channel>\n<ttl>120</ttl>", 1)
    url = feed_server.add("/ttl", body)
    f = feed("ttl", url, interval=300)

    async def go() -> None:
        clock = Clock(T0)
        async with harness(tmp_path / "w.db", clock) as h:
            r = await h.poll(f)
            assert (r.next_poll_reason, seconds_until(r.next_poll_at, T0)) == ("ttl", 7200)
            clock.to(r.next_poll_at)
            again = await h.poll(f)
            assert again.status == "not-modified" and again.next_poll_reason == "ttl"
            assert seconds_until(again.next_poll_at, clock()) == 7200

    asyncio.run(go())


def test_three_polls_of_301_move_the_feed(
    tmp_path: Path, feed_server: FeedServer, caplog: pytest.LogCaptureFixture
) -> None:
    new = feed_server.add("/new.xml", RSS)
    old = feed_server.add("/old.xml", b"", redirect_to="/new.xml", redirect_status=301)
    f = feed("wire", old)

    async def go() -> None:
        clock = Clock(T0)
        async with harness(tmp_path / "w.db", clock) as h:
            for n in (1, 2):
                assert (await h.poll(f)).status in ("ok", "not-modified")
                s = h.state("wire")
                assert (s.url, s.redirect_target, s.redirect_count) == (old, new, n)
                clock.advance(minutes=1)
            await h.poll(f)
            s = h.state("wire")
            assert s.url == new and s.configured_url == old and s.redirect_count == 0
            (moved,) = [r for r in caplog.records if "moved permanently" in r.getMessage()]
            assert moved.levelname == "WARNING" and f"{old} -> {new}" in moved.getMessage()
            # from now on the new URL is fetched directly; re-syncing the same feeds.yaml does not undo the move
            before = feed_server.count("/old.xml")
            h.store.sync_feeds([("wire", old)], clock())
            await h.poll(f)
            assert feed_server.count("/old.xml") == before and h.state("wire").url == new
            overview = {r["name"]: r for r in h.store.feeds_overview()}["wire"]
            assert overview["url"] == old and overview["moved_to"] == new and overview["moved_at"]
            # the user edits the URL in feeds.yaml: that URL is fetched, the move forgotten
            other = feed_server.add("/other.xml", RSS)
            await h.poll(feed("wire", other))
            s = h.state("wire")
            assert s.url == other and s.configured_url == other

    asyncio.run(go())


def test_308_moves_but_302_and_307_never_do(tmp_path: Path, feed_server: FeedServer) -> None:
    feed_server.add("/target.xml", RSS)
    perm = feed_server.add("/perm", b"", redirect_to="/target.xml", redirect_status=308)
    temps = {
        code: feed_server.add(f"/t{code}", b"", redirect_to="/target.xml", redirect_status=code) for code in (302, 307)
    }

    async def go() -> None:
        clock = Clock(T0)
        async with harness(tmp_path / "w.db", clock) as h:
            for _ in range(5):
                for code, url in temps.items():
                    assert (await h.poll(feed(f"t{code}", url))).status in ("ok", "not-modified")
                await h.poll(feed("perm", perm))
                clock.advance(minutes=1)
            for code, url in temps.items():
                s = h.state(f"t{code}")
                assert s.url == url and s.redirect_count == 0, code
            assert h.state("perm").url == feed_server.url_for("/target.xml")

    asyncio.run(go())


def test_a_301_streak_broken_by_a_direct_answer_starts_over(tmp_path: Path, feed_server: FeedServer) -> None:
    feed_server.add("/new.xml", RSS)
    old = feed_server.add("/old.xml", b"", redirect_to="/new.xml", redirect_status=301)
    f = feed("wire", old)

    async def go() -> None:
        clock = Clock(T0)
        async with harness(tmp_path / "w.db", clock) as h:
            await h.poll(f)
            await h.poll(f)
            feed_server.add("/old.xml", RSS)  # the publisher changed its mind
            await h.poll(f)
            assert h.state("wire").redirect_count == 0
            feed_server.behave("/old.xml", redirect_to="/new.xml", redirect_status=301)
            await h.poll(f)
            await h.poll(f)
            assert h.state("wire").url == old and h.state("wire").redirect_count == 2

    asyncio.run(go())


def test_410_disables_until_the_url_changes(tmp_path: Path, feed_server: FeedServer) -> None:
    url = feed_server.add("/gone", b"gone", status=410)
    f = feed("gone", url)

    async def go() -> None:
        clock = Clock(T0)
        async with harness(tmp_path / "w.db", clock) as h:
            r = await h.poll(f)
            assert r.status == "failed" and r.next_poll_reason == "gone" and r.next_poll_at is None
            assert r.error and "disabled" in r.error
            assert h.state("gone").gone_at == T0
            clock.advance(days=30)
            skipped = await h.poll(f)
            assert skipped.status == "skipped" and skipped.next_poll_reason == "gone"
            assert feed_server.count("/gone") == 1
            overview = {r["name"]: r for r in h.store.feeds_overview()}["gone"]
            assert overview["disabled_at"] and overview["http_status"] == 410
            # the user points it at a new URL: polled at once, enabled again
            fresh = feed_server.add("/fresh", RSS)
            again = await h.poll(feed("gone", fresh))
            assert again.status == "ok" and h.state("gone").gone_at is None

    asyncio.run(go())


def test_force_polls_a_held_or_disabled_feed_and_a_success_re_enables(tmp_path: Path, feed_server: FeedServer) -> None:
    url = feed_server.add("/gone", b"", status=410)
    f = feed("gone", url)

    async def go() -> None:
        async with harness(tmp_path / "w.db", Clock(T0)) as h:
            await h.poll(f)
            feed_server.add("/gone", RSS)  # it came back after all
            assert (await h.pipeline.poll_many([f]))[0].status == "skipped"
            (r,) = await h.pipeline.poll_many([f], force=True)
            assert r.status == "ok" and h.state("gone").gone_at is None

    asyncio.run(go())


def test_304s_of_many_feeds_share_a_write_and_each_poll_returns_with_its_state_stored(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    """Group commit: the 304s that arrive together are stored by one transaction, not one each, and a poll
    still returns only once its own row is committed."""
    from sqlalchemy import event

    urls = [feed_server.add(f"/g{i}.xml", make_rss([{"guid": f"g{i}", "title": f"item {i}"}])) for i in range(20)]
    feeds = [feed(f"g{i}", u) for i, u in enumerate(urls)]
    clock = Clock(datetime(2026, 11, 20, tzinfo=UTC))

    async def go() -> None:
        async with harness(tmp_path / "w.db", clock) as h:
            assert {r.status for r in await h.pipeline.poll_many(feeds)} == {"ok"}
            commits = 0

            def count(_conn: object) -> None:
                nonlocal commits
                commits += 1

            event.listen(h.store.engine, "commit", count)
            clock.advance(minutes=5)
            reports = await h.pipeline.poll_many(feeds)
            event.remove(h.store.engine, "commit", count)
            assert [r.status for r in reports] == ["not-modified"] * len(feeds)
            for f in feeds:  # read at once: every row is there when poll_many returns
                s = h.state(f.name)
                assert s.last_poll_at == clock() and s.last_success_at == clock()
            assert commits <= 3, commits  # not one per feed

    asyncio.run(go())


def test_a_304_whose_poll_is_cancelled_is_still_stored_when_the_pipeline_closes(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    """A shutdown that cancels polls waiting for the grouped 304 write must not drop their rows: close()
    writes what is still waiting."""
    url = feed_server.add("/c.xml", make_rss([{"guid": "c1", "title": "one"}]))
    f = feed("c", url)
    clock = Clock(datetime(2026, 11, 20, tzinfo=UTC))

    async def go() -> None:
        async with harness(tmp_path / "w.db", clock) as h:
            assert (await h.poll(f)).status == "ok"
            first = clock()
            h.pipeline.not_modified_wait = 30.0  # the write would come long after the shutdown
            clock.advance(minutes=5)
            task = asyncio.ensure_future(h.poll(f))
            for _ in range(200):  # until the 304 has joined a group and waits for its write
                if h.pipeline._nm_rows:
                    break
                await asyncio.sleep(0.01)
            assert h.pipeline._nm_rows, "the poll never reached the grouped write"
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert h.state("c").last_poll_at == first  # not written yet
            h.pipeline.close()  # what the daemon does after a drain that cancelled polls
            assert h.state("c").last_poll_at == clock() == first + timedelta(minutes=5)

    asyncio.run(go())
