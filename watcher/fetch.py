"""HTTP (and file://) fetching: conditional GET, limits, deadlines -> a FetchResult value, never a raise.

Measured traps this module guards against (see LIBRARY-NOTES): httpx has no total timeout (a server trickling
one byte per read timeout never ends), so every fetch runs under ``asyncio.timeout``; httpx does not cap
decompression (a 1 MB gzip inflates to 1 GB), so the body is read raw and inflated here with a bound (gzip,
deflate and brotli); and one slow host must not hold every connection, so fetches are limited globally and per
host.

Besides the body, a result carries what politeness needs (see policy.py): how long the response says it stays
fresh (``Cache-Control: max-age`` / ``Expires``), ``Retry-After`` on 429/503, and where a chain of permanent
redirects (301/308) leads. Deciding what to do with them is not this module's business.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import itertools
import time
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

import brotli
import httpx

from .models import Failed, Fetched, FetchResult, Freshness, NotModified

MAX_REDIRECTS = 5
PERMANENT_REDIRECTS = (301, 308)
ACCEPT_ENCODING = "gzip, deflate, br"


@dataclass(frozen=True)
class Request:
    """What to fetch and within which limits."""

    url: str
    etag: str | None = None
    last_modified: str | None = None
    timeout: float = 10.0  # connect / read / write / pool, each
    deadline: float = 60.0  # the whole fetch, headers and body
    max_size: int = 10 * 1000 * 1000  # decoded body bytes


class Fetcher(Protocol):
    """The seam the pipeline fetches through (tests may inject another)."""

    async def fetch(self, req: Request) -> FetchResult: ...


class TooLarge(Exception):
    pass


class CorruptBody(Exception):
    pass


class _Inflater:
    """Incremental, bounded decoding of a Content-Encoding (gzip / deflate / br / identity).

    ``decompress(data, max_length)`` (zlib) and ``process(data, output_buffer_limit=...)`` (brotli >= 1.2) never
    produce much more than the cap allows, so a bomb costs about the cap in memory, however much it would
    inflate to.
    """

    def __init__(self, encoding: str, limit: int) -> None:
        self.limit = limit
        self.size = 0
        self._may_be_raw = False  # "deflate" is often sent without its zlib header
        enc = encoding.strip().lower()
        self._d: zlib._Decompress | None = None
        self._br: brotli.Decompressor | None = None
        if enc in ("", "identity"):
            self._d = None
        elif enc == "br":
            self._br = brotli.Decompressor()
        elif enc in ("gzip", "x-gzip"):
            self._d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif enc == "deflate":
            self._d = zlib.decompressobj()
            self._may_be_raw = True
        else:
            raise ValueError(f"unsupported Content-Encoding {encoding!r}")

    def feed(self, data: bytes) -> bytes:
        if self._br is not None:
            return self._feed_brotli(data)
        if self._d is None:
            return self._count(data)
        out = bytearray()
        while data:
            try:
                chunk = self._d.decompress(data, self.limit - self.size + 1)
            except zlib.error:
                if self._may_be_raw:
                    self._may_be_raw = False
                    self._d = zlib.decompressobj(-zlib.MAX_WBITS)
                    continue
                raise
            self._may_be_raw = False
            out += self._count(chunk)
            data = self._d.unconsumed_tail
        return bytes(out)

    def _feed_brotli(self, data: bytes) -> bytes:
        # brotli's contract: once the output limit is hit, call process(b"") until it can accept input again.
        assert self._br is not None
        out = bytearray()
        try:
            out += self._count(self._br.process(data, output_buffer_limit=self.limit - self.size + 1))
            while not self._br.can_accept_more_data():
                out += self._count(self._br.process(b"", output_buffer_limit=self.limit - self.size + 1))
        except brotli.error as e:
            raise CorruptBody(f"corrupt br body: {e}") from e
        return bytes(out)

    def flush(self) -> bytes:
        if self._br is not None:
            if not self._br.is_finished():
                raise CorruptBody("corrupt br body: the stream ends early")
            return b""
        return self._count(self._d.flush()) if self._d is not None else b""

    def _count(self, chunk: bytes) -> bytes:
        self.size += len(chunk)
        if self.size > self.limit:
            raise TooLarge()
        return chunk


def _retry_after(value: str | None, now: float) -> float | None:
    """Retry-After in seconds, from a number of seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)


def freshness(headers: Mapping[str, str], now: float) -> Freshness | None:
    """How long a response stays fresh (RFC 9111 4.2.1): ``Cache-Control: max-age`` minus ``Age``, else
    ``Expires`` minus ``Date``. None when it says nothing, forbids caching, or is already stale; an invalid
    ``Expires`` means "already expired" (RFC 9111 5.3). Header names must be lower-case.
    """
    directives = {}
    for part in headers.get("cache-control", "").split(","):
        name, _, value = part.strip().partition("=")
        directives[name.strip().lower()] = value.strip().strip('"')
    if "no-store" in directives or "no-cache" in directives:
        return None
    if "max-age" in directives:
        if not directives["max-age"].isdigit():
            return None
        age = headers.get("age", "").strip()
        seconds = float(directives["max-age"]) - (float(age) if age.isdigit() else 0.0)
        return Freshness(seconds, "max-age") if seconds > 0 else None
    expires = headers.get("expires")
    if not expires:
        return None
    try:
        when = email.utils.parsedate_to_datetime(expires).timestamp()
    except (TypeError, ValueError):
        return None
    base = now
    if headers.get("date"):
        with contextlib.suppress(TypeError, ValueError):
            base = email.utils.parsedate_to_datetime(headers["date"]).timestamp()
    seconds = when - base
    return Freshness(seconds, "expires") if seconds > 0 else None


def permanent_target(resp: httpx.Response) -> str | None:
    """Where the leading permanent redirects (301/308) of this response's chain lead, or None.

    ``A -301-> B -302-> C`` gives B: the move to B is permanent, the hop to C is not. ``A -302-> B -301-> C``
    gives None: the feed's own URL was only redirected temporarily.
    """
    chain = [*resp.history, resp]
    target = None
    for hop, nxt in itertools.pairwise(chain):
        if hop.status_code not in PERMANENT_REDIRECTS:
            break
        target = str(nxt.url)
    return target


@dataclass
class _Host:
    """One host's share of the fetcher: its concurrency limit and its client, created on first use."""

    limit: asyncio.Semaphore
    client: httpx.AsyncClient | None = None
    busy: int = 0  # fetches queued or in flight
    last_used: float = 0.0  # time.monotonic() of the last fetch's end


class HttpFetcher:
    """Fetches feeds with httpx: one small AsyncClient per host, created on first use, closed once idle.

    One client per host, not one for all: httpcore walks every connection of its pool on each request (and
    counts them pairwise to find idle ones), so a shared pool of 16 hosts x 2 connections cost ~0.8 ms of CPU
    per request, most of an all-304 poll (bench/poll.py profile). Each host's pool holds what the per-host limit
    lets it use. All clients share one SSL context (building one costs milliseconds). A client idle for
    `idle_close` seconds (default 60) is closed, so a daemon polling hundreds of hosts every 15 minutes keeps
    no sockets open in between.

    Create it inside the running event loop; ``await aclose()`` when done (or use ``async with``).
    """

    def __init__(
        self,
        *,
        user_agent: str,
        concurrency: int = 8,
        per_host: int = 2,
        transport: httpx.AsyncBaseTransport | None = None,
        idle_close: float = 60.0,
    ) -> None:
        self.idle_close = idle_close  # seconds without a request after which a host's client is closed
        self._headers = {
            "User-Agent": user_agent,
            "Accept-Encoding": ACCEPT_ENCODING,
            "Accept": "application/atom+xml, application/rss+xml, application/xml;q=0.9, "
            "application/feed+json;q=0.9, text/xml;q=0.8, */*;q=0.5",
        }
        self._transport = transport  # tests may inject one: then every host shares one client around it
        self._ssl = httpx.create_ssl_context() if transport is None else None
        self._global = asyncio.Semaphore(concurrency)
        self._per_host_limit = per_host
        self._hosts: dict[str, _Host] = {}
        self._shared: httpx.AsyncClient | None = None
        self._next_sweep = time.monotonic() + idle_close
        self._urls: dict[str, tuple[httpx.URL, str]] = {}
        self._timeouts: dict[float, httpx.Timeout] = {}

    def _client(self) -> httpx.AsyncClient:
        if self._transport is not None:
            if self._shared is None:
                self._shared = self._new_client(transport=self._transport)
            return self._shared
        # A redirect to another host goes through this client too: one connection more than the host's limit,
        # so following it never waits for one of the host's own connections to close.
        limit = max(self._per_host_limit, 1)
        return self._new_client(
            limits=httpx.Limits(max_connections=limit + 1, max_keepalive_connections=limit),
            verify=self._ssl if self._ssl is not None else True,
        )

    def _new_client(self, **options: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(headers=self._headers, follow_redirects=True, max_redirects=MAX_REDIRECTS, **options)

    async def __aenter__(self) -> HttpFetcher:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        hosts, self._hosts = self._hosts, {}
        for host in hosts.values():
            if host.client is not None and host.client is not self._shared:
                await host.client.aclose()
        if self._shared is not None:
            await self._shared.aclose()
            self._shared = None

    async def _sweep(self, now: float) -> None:
        """Close the clients of hosts with no request in flight and none for `idle_close` seconds."""
        self._next_sweep = now + self.idle_close
        for key, host in list(self._hosts.items()):
            if host.busy == 0 and now - host.last_used > self.idle_close:
                del self._hosts[key]
                if host.client is not None and host.client is not self._shared:
                    await host.client.aclose()

    async def fetch(self, req: Request) -> FetchResult:
        parts = urlsplit(req.url)
        if parts.scheme.lower() == "file":
            return await asyncio.to_thread(read_file, req)
        now = time.monotonic()
        if now >= self._next_sweep:
            await self._sweep(now)
        key = f"{parts.scheme.lower()}://{parts.netloc.lower()}"
        host = self._hosts.get(key)
        if host is None:
            host = self._hosts[key] = _Host(asyncio.Semaphore(self._per_host_limit))
        host.busy += 1  # counted while queued too: the sweep must not close a client a task is about to use
        try:
            async with host.limit, self._global:  # the host first: a task queued on a busy host holds no slot
                if host.client is None:
                    host.client = self._client()
                try:
                    async with asyncio.timeout(req.deadline):
                        return await self._fetch(host.client, req)
                except TimeoutError:
                    return Failed(req.url, f"timed out after {req.deadline:g}s (total deadline)")
        finally:
            host.busy -= 1
            host.last_used = time.monotonic()

    def _url(self, url: str) -> tuple[httpx.URL, str]:
        """`url` parsed, and as httpx writes it: parsed once per feed, not once per poll (httpx parses URLs in
        Python, ~5% of a 304's CPU)."""
        cached = self._urls.get(url)
        if cached is None:
            parsed = httpx.URL(url)
            if len(self._urls) >= 10_000:  # feeds come and go in a long-running daemon: keep it bounded
                self._urls.clear()
            cached = self._urls[url] = (parsed, str(parsed))
        return cached

    def _timeout(self, seconds: float) -> httpx.Timeout:
        timeout = self._timeouts.get(seconds)
        if timeout is None:
            timeout = self._timeouts[seconds] = httpx.Timeout(seconds)
        return timeout

    async def _fetch(self, client: httpx.AsyncClient, req: Request) -> FetchResult:
        headers = {}
        if req.etag:
            headers["If-None-Match"] = req.etag
        if req.last_modified:
            headers["If-Modified-Since"] = req.last_modified
        try:
            url, url_text = self._url(req.url)
            async with client.stream("GET", url, headers=headers, timeout=self._timeout(req.timeout)) as resp:
                final = str(resp.url) if resp.history else url_text
                moved_to = permanent_target(resp)
                fresh = freshness({k.lower(): v for k, v in resp.headers.items()}, time.time())
                if resp.status_code == 304:
                    await resp.aread()  # consume the (empty) body, or httpcore closes the connection: no keep-alive
                    return NotModified(final, freshness=fresh, moved_to=moved_to)
                if resp.status_code != 200:
                    retry = None
                    if resp.status_code in (429, 503):
                        retry = _retry_after(resp.headers.get("retry-after"), time.time())
                    return Failed(
                        final,
                        f"HTTP {resp.status_code} {resp.reason_phrase}".strip(),
                        status=resp.status_code,
                        retry_after=retry,
                        moved_to=moved_to,
                    )
                length = resp.headers.get("content-length")
                if (
                    length
                    and length.isdigit()
                    and int(length) > req.max_size
                    and not resp.headers.get("content-encoding")
                ):
                    return Failed(
                        final, f"response of {int(length):,} bytes is over the {req.max_size:,}-byte cap", status=200
                    )
                try:
                    inflater = _Inflater(resp.headers.get("content-encoding", ""), req.max_size)
                except ValueError as e:
                    return Failed(final, str(e), status=200)
                body = bytearray()
                try:
                    async for raw in resp.aiter_raw():
                        body += inflater.feed(raw)
                    body += inflater.flush()
                except TooLarge:
                    return Failed(final, f"response is over the {req.max_size:,}-byte cap (cut)", status=200)
                except zlib.error as e:
                    return Failed(final, f"corrupt {resp.headers.get('content-encoding')} body: {e}", status=200)
                except CorruptBody as e:
                    return Failed(final, str(e), status=200)
                h = {k.lower(): v for k, v in resp.headers.items()}
                h.pop("content-encoding", None)
                h.pop("content-length", None)
                return Fetched(
                    final,
                    200,
                    bytes(body),
                    h,
                    etag=resp.headers.get("etag"),
                    last_modified=resp.headers.get("last-modified"),
                    freshness=fresh,
                    moved_to=moved_to,
                )
        except httpx.TooManyRedirects:
            return Failed(req.url, f"more than {MAX_REDIRECTS} redirects")
        except httpx.TimeoutException as e:
            return Failed(req.url, f"timed out ({type(e).__name__}, {req.timeout:g}s)")
        except httpx.HTTPError as e:
            return Failed(req.url, f"{type(e).__name__}: {e}" if str(e) else type(e).__name__)


def read_file(req: Request) -> FetchResult:
    """file:// URLs: local files, with the same size cap."""
    parts = urlsplit(req.url)
    path = Path(unquote(parts.path))
    try:
        with path.open("rb") as f:
            body = f.read(req.max_size + 1)
    except OSError as e:
        return Failed(req.url, f"cannot read {path}: {e.strerror}")
    if len(body) > req.max_size:
        return Failed(req.url, f"file is over the {req.max_size:,}-byte cap")
    ctype = "application/json" if path.suffix == ".json" else "application/xml"
    return Fetched(req.url, 0, body, {"content-type": ctype})


def header_map(headers: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}
