"""One poll of one feed, end to end; one cycle over many feeds, each isolated from the others.

    feed_state | fetch | parse | drop_known | match | record (one transaction) | deliver

1. the store gives the feed's state (URL, ETag, Last-Modified, whether it was ever polled, its hold); a feed the
   server or its backoff holds back (policy.held_until) is skipped, unless forced;
2. fetch returns Fetched / NotModified / Failed as a value (a 304 ends the poll: no parsing);
3. parse turns bytes into plain-text entries (pure, in a worker thread);
4. entries whose key is already stored are dropped;
5. the compiled rules turn the new entries into hits (pure);
6. entries, hits and their pending alerts are written in ONE transaction, with the feed's new state;
7. the deliverer sends pending alerts and marks each one sent; a failure stays pending and is retried.

Every outcome also goes through policy.decide (next poll, backoff, redirect streak, 410), whose Decision is
written with the poll's own write.

A failure at any step is recorded on the feed and returned as a PollReport; it never stops the other feeds.
A crash between 6 and 7 loses nothing: the alerts are pending in the database and the next drain sends them.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, TypeVar

from .config import FeedConfig
from .errors import ParseError, StoreError
from .fetch import Fetcher, Request
from .models import Failed, FeedState, Fetched, Hit, NotModified, PollReport
from .parse import parse
from .policy import Decision, Limits, Outcome, decide, held_until
from .rules import RuleSet
from .rules.matcher import Feedinfo
from .store import NotModifiedWrite, PollWrite, Store

log = logging.getLogger("watcher.poll")
# Fetches under way plus fetched bodies waiting to be parsed and stored: above the fetcher's concurrency (or
# it would cap it), bounded (bench/poll.py: unbounded, 2,000 fetched feeds waited for the parse thread, 476 MB).
BACKLOG = 32
NOT_MODIFIED_WAIT = 0.05  # seconds a 304's state waits for others to share its write (see _record_not_modified)
T = TypeVar("T")


class Pipeline:
    """Polls feeds into the store. Rules come through a callable so a reload takes effect on the next poll."""

    def __init__(
        self,
        store: Store,
        fetcher: Fetcher,
        rules: Callable[[], RuleSet],
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        on_report: Callable[[PollReport], None] | None = None,
        rng: random.Random | None = None,
        backlog: int = BACKLOG,
    ) -> None:
        self.store = store
        self.fetcher = fetcher
        self.rules = rules
        self.now = now
        self.on_report = on_report  # called with every poll's report (metrics); must not raise or block
        self.rng = rng or random.Random()  # backoff jitter; tests inject a seeded one
        # SQLite has one writer: funnel every store call through one thread instead of contending for the lock
        self._db = ThreadPoolExecutor(max_workers=1, thread_name_prefix="watcher-db")
        # Parsing is pure Python and holds the GIL: more threads cannot parse faster, they only fight over it
        # (and with this loop and the database thread). One parse thread, as one database thread.
        self._parser = ThreadPoolExecutor(max_workers=1, thread_name_prefix="watcher-parse")
        self._backlog = asyncio.Semaphore(backlog)  # fetched bodies not yet stored (see _poll)

        # Group commit of 304s (see _record_not_modified): the batch being filled, and its write
        self.not_modified_wait = NOT_MODIFIED_WAIT
        self._closed = False
        self._nm_lock = threading.Lock()
        self._nm_rows: list[NotModifiedWrite] | None = None
        self._nm_written: asyncio.Future[None] | None = None

    def close(self) -> None:
        self._closed = True
        self._db.shutdown(wait=True)
        self._parser.shutdown(wait=True)
        # A group of 304s still waiting for its write (their polls were cancelled by a shutdown): write it here.
        self._write_not_modified()

    async def _record_not_modified(self, write: NotModifiedWrite) -> None:
        """Store a 304's feed state together with the other 304s of the next NOT_MODIFIED_WAIT seconds (group
        commit): the first opens a batch and schedules its write, the others join it until the write starts
        (it takes the batch then). Each returns once its row is committed, as a write of its own would; a
        failed write raises in each. A 304 costs a row, not a transaction: the all-304 poll spent more time in
        one commit per feed, and in handing the GIL back and forth with the database thread, than in HTTP
        (bench/poll.py). A state lost to a crash before the write costs nothing: the feed is polled again."""
        with self._nm_lock:
            if self._nm_rows is None:
                self._nm_rows = []
                self._nm_written = asyncio.ensure_future(self._write_not_modified_soon())
            self._nm_rows.append(write)
            written = self._nm_written
        assert written is not None
        await asyncio.shield(written)  # one poll cancelled must not cancel the write the others wait for

    async def _write_not_modified_soon(self) -> None:
        await asyncio.sleep(self.not_modified_wait)
        if not self._closed:  # else close() has written the batch
            await self._store(self._write_not_modified)

    def _write_not_modified(self) -> None:
        """In the database thread: take the open batch (later 304s open the next one) and write it."""
        with self._nm_lock:
            rows, self._nm_rows = self._nm_rows or [], None
        self.store.record_not_modified_many(rows)

    async def _store(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._db, partial(fn, *args))

    async def poll_feed(self, feed: FeedConfig, state: FeedState | None = None, *, force: bool = False) -> PollReport:
        """Poll one feed, unless the server or its backoff holds it back (or a 410 disabled it) and not `force`.

        ``state`` is its stored state when the caller has already read it (poll_many reads all at once).
        """
        started = time.monotonic()
        try:
            report = await self._poll(feed, started, force, state)
        except StoreError:
            raise  # the database itself is failing: not one feed's problem
        except Exception as e:  # a bug must not stop the other feeds, but it must be seen
            log.exception("feed %s: internal error while polling", feed.name)
            state = await self._store(self.store.feed_state, feed.name)
            error = f"internal error: {type(e).__name__}: {e}"
            report = await self._failed(feed, state, Outcome(ok=False), error, started)
        if report.status == "skipped":
            log.debug("feed=%s skipped: held until %s (%s)", report.feed, report.next_poll_at, report.next_poll_reason)
            return report
        log.info(
            "feed=%s status=%s http=%s new=%d hits=%d alerts=%d duration=%.2fs%s%s",
            report.feed,
            report.status,
            report.http_status if report.http_status is not None else "-",
            report.new_entries,
            report.hits,
            report.alerts,
            report.duration,
            f" error={report.error!r}" if report.error else "",
            f" next={report.next_poll_reason}@{report.next_poll_at:%Y-%m-%dT%H:%M:%SZ}"
            if report.next_poll_at is not None and report.next_poll_reason != "interval"
            else "",
            extra={  # the same fields as keys, for --log-format json (watcher/observe/logs.py)
                "event": "poll",
                "feed": report.feed,
                "status": report.status,
                "http": report.http_status,
                "new": report.new_entries,
                "hits": report.hits,
                "alerts": report.alerts,
                "duration": round(report.duration, 3),
                "error": report.error,
                "next_poll": report.next_poll_at.isoformat() if report.next_poll_at else None,
                "next_poll_reason": report.next_poll_reason,
            },
        )
        if self.on_report is not None:
            self.on_report(report)
        return report

    def _decide(self, feed: FeedConfig, state: FeedState, outcome: Outcome, now: datetime) -> Decision:
        limits = Limits(feed.interval, feed.max_backoff, feed.max_cache_wait)
        decision = decide(state, outcome, now, limits, self.rng)
        if decision.move_to is not None:
            log.warning(
                "feed %s moved permanently: %s -> %s (301/308 on %d polls in a row); fetched there from now on "
                "(edit its url in feeds.yaml to make it official)",
                feed.name,
                state.url,
                decision.move_to,
                state.redirect_count + 1,
            )
        if decision.gone:
            log.warning("feed %s answered 410 Gone: disabled until its url changes in feeds.yaml", feed.name)
        return decision

    async def _failed(
        self, feed: FeedConfig, state: FeedState | None, outcome: Outcome, error: str, started: float
    ) -> PollReport:
        now = self.now()
        decision = None
        if state is not None:
            decision = self._decide(feed, state, outcome, now)
            if decision.gone:
                error += "; feed disabled until its url changes in feeds.yaml"
            await self._store(self.store.record_failure, state.feed_id, now, outcome.http_status, error, decision)
        return PollReport(
            feed.name,
            "failed",
            outcome.http_status,
            0,
            0,
            0,
            time.monotonic() - started,
            error,
            next_poll_at=decision.next_poll_at if decision else None,
            next_poll_reason=decision.next_poll_reason if decision else None,
        )

    async def _poll(
        self, feed: FeedConfig, started: float, force: bool, prefetched: FeedState | None = None
    ) -> PollReport:
        state = prefetched if prefetched is not None else await self._store(self.store.feed_state, feed.name)
        if state is None or state.configured_url != feed.url:
            # a new feed, or its URL was edited since the last sync (a daemon reload): start afresh at it
            await self._store(self.store.sync_feeds, [(feed.name, feed.url)], self.now())
            state = await self._store(self.store.feed_state, feed.name)
            assert state is not None
        held = None if force else held_until(state, self.now())
        if held is not None:
            gone = state.gone_at is not None
            return PollReport(
                feed.name,
                "skipped",
                None,
                0,
                0,
                0,
                time.monotonic() - started,
                None,
                next_poll_at=None if gone else held,
                next_poll_reason="gone" if gone else state.next_poll_reason,
            )
        req = Request(
            url=state.url,
            etag=state.etag,
            last_modified=state.last_modified,
            timeout=feed.timeout,
            deadline=feed.deadline,
            max_size=feed.max_size,
        )
        # A fetched body holds its slot of the backlog until it is stored: fetching waits while parsing (one
        # thread) or the database lags behind, instead of piling bodies up in memory.
        async with self._backlog:
            result = await self.fetcher.fetch(req)
            if isinstance(result, Fetched):
                return await self._fetched(feed, state, result, started)
        if isinstance(result, Failed):
            outcome = Outcome(ok=False, http_status=result.status, retry_after=result.retry_after)
            return await self._failed(feed, state, outcome, result.reason, started)
        now = self.now()
        if isinstance(result, NotModified):
            outcome = Outcome(ok=True, freshness=result.freshness, ttl=state.ttl, moved_to=result.moved_to)
            decision = self._decide(feed, state, outcome, now)
            await self._record_not_modified(NotModifiedWrite(state.feed_id, now, result.status, decision))
            return PollReport(
                feed.name,
                "not-modified",
                result.status,
                0,
                0,
                0,
                time.monotonic() - started,
                next_poll_at=decision.next_poll_at,
                next_poll_reason=decision.next_poll_reason,
            )
        raise AssertionError(f"unexpected fetch result {result!r}")

    async def _fetched(self, feed: FeedConfig, state: FeedState, result: Fetched, started: float) -> PollReport:
        """Parse, match and store a fetched body."""
        now = self.now()
        try:
            parsed = await asyncio.get_running_loop().run_in_executor(
                self._parser, partial(parse, result.body, result.headers, url=result.url, now=now)
            )
        except ParseError as e:
            outcome = Outcome(ok=False, http_status=result.status or None)
            return await self._failed(feed, state, outcome, str(e), started)
        keys = [e.key for e in parsed.entries]
        # A feed never polled successfully has no entries stored yet (they are written with its first success).
        known = (
            set() if state.last_success_at is None else await self._store(self.store.known_keys, state.feed_id, keys)
        )
        new = [e for e in parsed.entries if e.key not in known]
        rules = self.rules()
        info = Feedinfo(feed.name, feed.tags)
        hits: dict[str, Sequence[Hit]] = {}
        for entry in new:
            found = rules.match(entry, info)
            if found:
                hits[entry.key] = found
        outcome = Outcome(ok=True, freshness=result.freshness, ttl=parsed.ttl, moved_to=result.moved_to)
        decision = self._decide(feed, state, outcome, now)
        first_poll = state.last_success_at is None
        cutoff = now - timedelta(seconds=feed.backfill_alert_window) if first_poll else None
        counts = await self._store(
            self.store.record_poll,
            PollWrite(
                feed_id=state.feed_id,
                now=now,
                url=result.url,
                http_status=result.status or None,
                etag=result.etag,
                last_modified=result.last_modified,
                title=parsed.title or None,
                entries=new,
                hits=hits,
                alert_cutoff=cutoff,
                warning=parsed.warning,
                decision=decision,
                ttl=parsed.ttl,
            ),
        )
        if parsed.warning:
            log.debug("feed %s: parsed with a warning: %s", feed.name, parsed.warning)
        return PollReport(
            feed.name,
            "ok",
            result.status or None,
            counts.new_entries,
            counts.hits,
            counts.alerts,
            time.monotonic() - started,
            next_poll_at=decision.next_poll_at,
            next_poll_reason=decision.next_poll_reason,
        )

    async def poll_many(self, feeds: Sequence[FeedConfig], *, force: bool = False) -> list[PollReport]:
        """Poll feeds concurrently (the fetcher enforces the global and per-host limits)."""
        # Every feed's state in one query, not one per feed: at 2,000 feeds that was 2,000 round trips through
        # the database thread before the first byte was fetched.
        states = {s.name: s for s in await self._store(self.store.feed_states)}
        return list(await asyncio.gather(*(self.poll_feed(f, states.get(f.name), force=force) for f in feeds)))
