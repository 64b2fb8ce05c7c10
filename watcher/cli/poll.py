"""The commands that run the pipeline (``poll``, ``run``) and ``check``, which validates their input."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from datetime import UTC, datetime

from ..config import Config, check_all
from ..durations import DurationError, parse_duration
from ..errors import ConfigError
from ..fetch import HttpFetcher
from ..health import HealthMonitor, health_settings, ops_destinations
from ..models import PollReport
from ..pipeline import BACKLOG, Pipeline
from ..policy import BACKOFF, GONE, RETRY_AFTER
from ..store import Store
from .common import EXIT_CONFIG, EXIT_PROBLEMS, Subparsers, env, load, make_deliverer, open_store, tune_for_polling

DELIVERY_LOCK_WAIT = 30.0  # seconds `watcher poll` waits for another process's delivery to finish


def register(sub: Subparsers) -> None:
    sp = sub.add_parser(
        "poll",
        help="poll every enabled feed once, send alerts, exit",
        description="One cycle over every enabled feed, then deliver pending alerts, check feed health and exit. "
        "Feeds the server or their backoff hold back (Retry-After, max-age, <ttl>, failures) and feeds disabled by "
        "410 Gone are skipped and listed. Exit 0 when the cycle ran, even if some feeds failed (they are reported).",
    )
    sp.add_argument(
        "--force",
        action="store_true",
        help="poll every enabled feed now, even those held back or disabled by 410 Gone (a success re-enables)",
    )
    sp.set_defaults(func=cmd_poll)

    sp = sub.add_parser(
        "run",
        help="run the daemon: poll each feed on its interval",
        description="Poll each feed on its own interval until SIGTERM/SIGINT. Reloads feeds.yaml "
        "and rules.yaml when they change or on SIGHUP.",
    )
    sp.add_argument(
        "--drain-deadline",
        metavar="DURATION",
        default="30s",
        help="on SIGTERM, how long polls in flight may take to finish (default 30s)",
    )
    sp.add_argument(
        "--http",
        metavar="ADDR",
        default=env("WATCHER_HTTP", ""),
        help="serve /healthz and /metrics on HOST:PORT, e.g. 127.0.0.1:8080 (env WATCHER_HTTP; default: off)",
    )
    sp.set_defaults(func=cmd_run)

    sp = sub.add_parser(
        "check",
        help="validate feeds.yaml and rules.yaml",
        description="Validate both files; print every error as file:line: message; exit 1 on any.",
    )
    sp.set_defaults(func=cmd_check)


def cmd_check(args: argparse.Namespace) -> int:
    try:
        issues = check_all(args.feeds, args.rules)
    except ConfigError as e:
        issues = e.issues
    for issue in issues:
        print(issue)
    if issues:
        print(f"{len(issues)} problem{'s' if len(issues) != 1 else ''} found", file=sys.stderr)
        return EXIT_PROBLEMS
    config = load(args)
    print(
        f"ok: {len(config.feeds.feeds)} feeds ({len(config.feeds.enabled)} enabled), "
        f"{len(config.rules.rules)} rules, destinations: "
        + "; ".join(
            name
            if d.is_console
            else f"{name} ({len(d.urls)} URL{'s' if len(d.urls) != 1 else ''}, {d.policy.describe()})"
            for name, d in config.rules.destinations.items()
        )
    )
    return 0


async def _poll(config: Config, store: Store, *, force: bool = False) -> int:
    tune_for_polling()
    now = datetime.now(UTC)
    feeds = config.feeds.enabled
    await asyncio.to_thread(store.sync_feeds, [(f.name, f.url) for f in config.feeds.feeds], now)
    d = config.feeds.defaults
    async with HttpFetcher(user_agent=d.user_agent, concurrency=d.concurrency, per_host=d.per_host) as fetcher:
        pipeline = Pipeline(store, fetcher, lambda: config.rules.rules, backlog=backlog(d.concurrency))
        try:
            reports = await pipeline.poll_many(feeds, force=force)
        finally:
            pipeline.close()
    delivery = await make_deliverer(config, store).deliver_pending(wait=DELIVERY_LOCK_WAIT)
    await HealthMonitor(store, ops_destinations(config), health_settings(config)).check([f.name for f in feeds])
    ok = sum(r.status == "ok" for r in reports)
    nm = sum(r.status == "not-modified" for r in reports)
    failed = [r for r in reports if r.status == "failed"]
    skipped = [r for r in reports if r.status == "skipped"]
    print(
        f"polled {len(reports) - len(skipped)} feeds: {ok} ok, {nm} not modified, {len(failed)} failed"
        + (f", {len(skipped)} held back" if skipped else "")
        + f"; {sum(r.new_entries for r in reports)} new entries, {sum(r.hits for r in reports)} hits, "
        f"{delivery.sent} alerts sent"
        + (f", {delivery.held} held for a digest" if delivery.held else "")
        + (f", {delivery.failed} alerts failed (kept for retry)" if delivery.failed else "")
        + ("; another watcher process is delivering: alerts left to it" if delivery.busy else ""),
        file=sys.stderr,
    )
    for r in failed:
        print(f"  failed: {r.feed}: {r.error}", file=sys.stderr)
    for r in skipped:
        print(f"  held back: {r.feed}: {held_text(r)}", file=sys.stderr)
    return 0


def backlog(concurrency: int) -> int:
    """The pipeline's backlog for a fetch concurrency: room for every fetch, and as many bodies again."""
    return max(BACKLOG, 2 * concurrency)


def held_text(r: PollReport) -> str:
    if r.next_poll_reason == GONE or r.next_poll_at is None:
        return "disabled by 410 Gone (change its url in feeds.yaml, or poll it once with --force)"
    what = "backing off" if r.next_poll_reason in (BACKOFF, RETRY_AFTER) else "cached"
    return f"{what} until {r.next_poll_at:%Y-%m-%d %H:%M:%S} UTC ({r.next_poll_reason}; --force polls it now)"


def cmd_poll(args: argparse.Namespace) -> int:
    config = load(args)
    store = open_store(args)
    try:
        return asyncio.run(_poll(config, store, force=args.force))
    finally:
        store.close()


def cmd_run(args: argparse.Namespace) -> int:
    from .. import retention
    from ..observe.service import Observability
    from ..scheduler import Daemon

    try:
        drain = parse_duration(args.drain_deadline)
    except DurationError as e:
        print(f"watcher run: --drain-deadline: {e}", file=sys.stderr)
        return EXIT_CONFIG
    config = load(args)
    store = open_store(args)

    async def main() -> None:
        tune_for_polling()
        d = config.feeds.defaults
        obs = Observability(store, args.http) if args.http else None  # --http: metrics, /healthz, /metrics
        async with HttpFetcher(user_agent=d.user_agent, concurrency=d.concurrency, per_host=d.per_host) as fetcher:
            await asyncio.to_thread(store.sync_feeds, [(f.name, f.url) for f in config.feeds.feeds], datetime.now(UTC))
            daemon: Daemon | None = None
            pipeline = Pipeline(
                store,
                obs.fetcher(fetcher) if obs else fetcher,
                lambda: daemon.config.rules.rules if daemon else config.rules.rules,
                on_report=obs.on_report if obs else None,
                backlog=backlog(d.concurrency),
            )
            deliverer = make_deliverer(config, store)
            health = HealthMonitor(store, ops_destinations(config), health_settings(config))
            daemon = Daemon(
                config, pipeline, deliverer, load_config=lambda: load(args), drain_deadline=drain, health=health
            )
            retention.schedule_daily(daemon, store)
            try:
                async with contextlib.AsyncExitStack() as stack:
                    if obs:
                        obs.attach(daemon)
                        await stack.enter_async_context(obs)
                    await daemon.run()
            finally:
                pipeline.close()

    try:
        asyncio.run(main())
    finally:
        store.close()
    return 0
