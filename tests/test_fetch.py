"""Fetching against a real HTTP server on 127.0.0.1: validators, limits, deadlines, failures as values."""

from __future__ import annotations

import asyncio
import email.utils
import gzip
import resource
import time
import zlib
from pathlib import Path

import brotli
from servers import FeedServer, make_rss

from watcher import __version__
from watcher.config import DEFAULT_USER_AGENT
from watcher.fetch import HttpFetcher, Request, freshness
from watcher.models import Failed, Fetched, FetchResult, Freshness, NotModified

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


def _brotli_bomb(size: int) -> bytes:
    """`size` zero bytes, brotli-compressed a MiB at a time (so making it does not raise the peak memory)."""
    c = brotli.Compressor(quality=1)
    chunk = b"\0" * (1024 * 1024)
    out = [c.process(chunk) for _ in range(size // len(chunk))]
    return b"".join(out) + c.finish()


def test_brotli_is_decoded_and_offered(feed_server: FeedServer) -> None:
    url = feed_server.add("/br", raw_body=brotli.compress(FEED), headers={"Content-Encoding": "br"})
    r = fetch(Request(url))
    assert isinstance(r, Fetched) and r.body == FEED
    assert "br" in [e.strip() for e in feed_server.last_headers("/br")["accept-encoding"].split(",")]


def test_brotli_bomb_is_cut_with_flat_memory(feed_server: FeedServer) -> None:
    """1 GiB of zeros in ~200 KB of brotli: the bounded decompressor stops at the cap, memory stays flat."""
    bomb = _brotli_bomb(1024 * 1024 * 1024)
    assert len(bomb) < 1_000_000
    url = feed_server.add("/brbomb", raw_body=bomb, headers={"Content-Encoding": "br"})
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    r = fetch(Request(url, max_size=10_000_000))
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert isinstance(r, Failed) and "cap" in r.reason
    assert grown_mb < 100, grown_mb


def test_corrupt_or_truncated_brotli_is_a_failure(feed_server: FeedServer) -> None:
    whole = brotli.compress(FEED * 20)
    bad = feed_server.add("/bad", raw_body=b"\xff" * 64, headers={"Content-Encoding": "br"})
    cut = feed_server.add("/cut", raw_body=whole[: len(whole) // 2], headers={"Content-Encoding": "br"})
    for url in (bad, cut):
        r = fetch(Request(url))
        assert isinstance(r, Failed) and "corrupt br body" in r.reason, r


def test_default_user_agent_names_watcher_its_version_and_url(feed_server: FeedServer) -> None:
    url = feed_server.add("/ua", FEED)

    async def go() -> None:
        async with HttpFetcher(user_agent=DEFAULT_USER_AGENT) as f:
            await f.fetch(Request(url))

    asyncio.run(go())
    ua = feed_server.last_headers("/ua")["user-agent"]
    assert ua.startswith(f"watcher/{__version__} ") and "+https://" in ua


def test_redirect_chains_report_only_leading_permanent_moves(feed_server: FeedServer) -> None:
    target = feed_server.add("/final.xml", FEED)
    feed_server.add("/mid-temp", b"", redirect_to="/final.xml", redirect_status=302)
    feed_server.add("/mid-perm", b"", redirect_to="/final.xml", redirect_status=308)
    perm_then_temp = feed_server.add("/a", b"", redirect_to="/mid-temp", redirect_status=301)
    temp_then_perm = feed_server.add("/b", b"", redirect_to="/mid-perm", redirect_status=307)
    perm_perm = feed_server.add("/c", b"", redirect_to="/mid-perm", redirect_status=301)
    r1, r2, r3, r4 = (fetch(Request(u)) for u in (perm_then_temp, temp_then_perm, perm_perm, target))
    assert isinstance(r1, Fetched) and r1.url == target and r1.moved_to == feed_server.url_for("/mid-temp")
    assert isinstance(r2, Fetched) and r2.moved_to is None
    assert isinstance(r3, Fetched) and r3.moved_to == target
    assert isinstance(r4, Fetched) and r4.moved_to is None


def test_freshness_headers() -> None:
    now = 1_800_000_000.0
    date = email.utils.formatdate(now, usegmt=True)
    assert freshness({"cache-control": "public, max-age=600"}, now) == Freshness(600, "max-age")
    assert freshness({"cache-control": 'max-age="600"', "age": "100"}, now) == Freshness(500, "max-age")
    assert freshness({"cache-control": "max-age=600, no-cache"}, now) is None
    assert freshness({"cache-control": "no-store"}, now) is None
    assert freshness({"cache-control": "max-age=abc"}, now) is None
    expires = email.utils.formatdate(now + 3600, usegmt=True)
    assert freshness({"expires": expires, "date": date}, now) == Freshness(3600, "expires")
    assert freshness({"expires": expires}, now + 600) == Freshness(3000, "expires")  # no Date: our clock
    assert freshness({"expires": "0"}, now) is None  # invalid means already expired
    assert freshness({"expires": expires, "cache-control": "max-age=60"}, now) == Freshness(60, "max-age")
    assert freshness({}, now) is None


def _live_connections(server: FeedServer) -> int:
    with server._lock:  # the server's own record of the connections it still serves
        return len(server._connections)


def test_each_host_keeps_its_connections_and_an_idle_host_is_closed(feed_server: FeedServer) -> None:
    """One small client per host: a host's connections are reused poll after poll, and once a host has been
    idle for `idle_close` its connections are closed (a daemon polling every 15 minutes keeps no socket open in
    between), while a busy host keeps its own."""
    with FeedServer() as other:
        a, b = feed_server.add("/a", FEED), other.add("/b", FEED)

        async def go() -> None:
            async with HttpFetcher(user_agent=UA, per_host=2, idle_close=0.5) as f:
                for _ in range(3):
                    assert isinstance(await f.fetch(Request(a)), Fetched)
                    assert isinstance(await f.fetch(Request(b)), Fetched)
                assert _live_connections(feed_server) == 1 and _live_connections(other) == 1  # reused
                deadline = time.monotonic() + 1.5
                while time.monotonic() < deadline:  # b stays busy, a idles
                    assert isinstance(await f.fetch(Request(b)), Fetched)
                    await asyncio.sleep(0.1)
                for _ in range(50):  # the server notices the close when its handler reads EOF
                    if _live_connections(feed_server) == 0:
                        break
                    await asyncio.sleep(0.05)
                assert _live_connections(feed_server) == 0
                assert _live_connections(other) == 1
                assert isinstance(await f.fetch(Request(a)), Fetched)  # a new client for a, on demand

        asyncio.run(go())
