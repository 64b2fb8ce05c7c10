"""Fetching against a real HTTP server on 127.0.0.1: validators, limits, deadlines, failures as values."""

from __future__ import annotations

import asyncio
import gzip
import resource
import time
import zlib
from pathlib import Path

from servers import FeedServer, make_rss

from watcher.fetch import HttpFetcher, Request
from watcher.models import Failed, Fetched, FetchResult, NotModified

UA = "watcher-test/1"


def fetch(req: Request, **kw: int) -> FetchResult:
    async def go() -> FetchResult:
        async with HttpFetcher(user_agent=UA, **kw) as f:
            return await f.fetch(req)

    return asyncio.run(go())


FEED = make_rss([{"guid": "1", "title": "hello"}]).encode()


def test_conditional_get(feed_server: FeedServer) -> None:
    url = feed_server.add("/f.xml", FEED, last_modified="Tue, 18 Nov 2025 16:00:00 GMT")
    first = fetch(Request(url))
    assert isinstance(first, Fetched) and first.body == FEED and first.etag
    assert first.last_modified == "Tue, 18 Nov 2025 16:00:00 GMT"
    second = fetch(Request(url, etag=first.etag, last_modified=first.last_modified))
    assert isinstance(second, NotModified)
    h = feed_server.last_headers("/f.xml")
    assert h["if-none-match"] == first.etag and h["user-agent"] == UA
    assert "gzip" in h["accept-encoding"]


def test_http_error_is_a_value(feed_server: FeedServer) -> None:
    url = feed_server.add("/e", b"boom", status=500)
    r = fetch(Request(url))
    assert isinstance(r, Failed) and r.status == 500 and "500" in r.reason


def test_retry_after_is_read(feed_server: FeedServer) -> None:
    url = feed_server.add("/busy", b"", status=429, retry_after="120")
    r = fetch(Request(url))
    assert isinstance(r, Failed) and r.retry_after == 120


def test_connection_refused_is_a_value() -> None:
    r = fetch(Request("http://127.0.0.1:9/feed", timeout=2))
    assert isinstance(r, Failed) and "Connect" in r.reason


def test_server_that_holds_the_connection_times_out(feed_server: FeedServer) -> None:
    url = feed_server.add("/hang", FEED, hang=30)
    started = time.monotonic()
    r = fetch(Request(url, timeout=1, deadline=5))
    assert isinstance(r, Failed) and "timed out" in r.reason
    assert time.monotonic() - started < 4


def test_trickle_is_ended_by_the_total_deadline(feed_server: FeedServer) -> None:
    """One byte every 0.5 s never trips a 1 s read timeout; the total deadline must end it."""
    url = feed_server.add("/slow", FEED, trickle=(1, 0.5))
    started = time.monotonic()
    r = fetch(Request(url, timeout=1, deadline=2))
    elapsed = time.monotonic() - started
    assert isinstance(r, Failed) and "deadline" in r.reason
    assert 1.9 < elapsed < 3.5, elapsed


def test_size_cap_with_content_length(feed_server: FeedServer) -> None:
    url = feed_server.add("/big", b"x" * 2_000_000)
    r = fetch(Request(url, max_size=1_000_000))
    assert isinstance(r, Failed) and "cap" in r.reason


def test_size_cap_without_content_length(feed_server: FeedServer) -> None:
    url = feed_server.add("/big", b"x" * 2_000_000, chunked=True)
    r = fetch(Request(url, max_size=1_000_000))
    assert isinstance(r, Failed) and "cap" in r.reason


def test_gzip_is_decoded(feed_server: FeedServer) -> None:
    url = feed_server.add("/gz", FEED, gzip=True)
    r = fetch(Request(url))
    assert isinstance(r, Fetched) and r.body == FEED


def test_raw_deflate_is_decoded(feed_server: FeedServer) -> None:
    c = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    raw = c.compress(FEED) + c.flush()
    url = feed_server.add("/deflate", raw_body=raw, headers={"Content-Encoding": "deflate"})
    r = fetch(Request(url))
    assert isinstance(r, Fetched) and r.body == FEED


def test_gzip_bomb_is_cut_with_flat_memory(feed_server: FeedServer) -> None:
    """~1 MB of gzip inflating to 1 GB: httpx would inflate it all; the bounded inflater stops at the cap."""
    bomb = gzip.compress(b"\0" * (1024 * 1024 * 1024), compresslevel=9)
    assert len(bomb) < 1_100_000
    url = feed_server.add("/bomb", raw_body=bomb, headers={"Content-Encoding": "gzip"})
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    r = fetch(Request(url, max_size=10_000_000))
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert isinstance(r, Failed) and "cap" in r.reason
    assert grown_mb < 100, grown_mb


def test_redirects_are_followed_and_final_url_reported(feed_server: FeedServer) -> None:
    target = feed_server.add("/new.xml", FEED)
    url = feed_server.add("/old.xml", b"", redirect_to="/new.xml", redirect_status=301)
    r = fetch(Request(url))
    assert isinstance(r, Fetched) and r.url == target


def test_redirect_loop_fails(feed_server: FeedServer) -> None:
    a = feed_server.add("/a", b"", redirect_to="/b", redirect_status=302)
    feed_server.add("/b", b"", redirect_to="/a", redirect_status=302)
    r = fetch(Request(a))
    assert isinstance(r, Failed) and "redirect" in r.reason


def test_connection_reset_mid_body(feed_server: FeedServer) -> None:
    url = feed_server.add("/reset", FEED * 50, reset_after=100)
    r = fetch(Request(url))
    assert isinstance(r, Failed)


def test_file_urls(tmp_path: Path) -> None:
    p = tmp_path / "f.xml"
    p.write_bytes(FEED)
    r = fetch(Request(p.as_uri()))
    assert isinstance(r, Fetched) and r.body == FEED
    missing = fetch(Request((tmp_path / "nope.xml").as_uri()))
    assert isinstance(missing, Failed) and "cannot read" in missing.reason


def test_per_host_limit(feed_server: FeedServer) -> None:
    """With per_host=2, a host never sees more than two fetches at once."""
    for i in range(6):
        feed_server.add(f"/s{i}", FEED, delay=0.3)

    async def go() -> float:
        async with HttpFetcher(user_agent=UA, concurrency=8, per_host=2) as f:
            started = time.monotonic()
            await asyncio.gather(*(f.fetch(Request(feed_server.url_for(f"/s{i}"))) for i in range(6)))
            return time.monotonic() - started

    elapsed = asyncio.run(go())
    assert elapsed >= 0.85, elapsed  # 6 requests, 2 at a time, 0.3 s each: at least 3 rounds
