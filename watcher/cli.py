"""The command line: parse arguments, build the parts, call them. The composition root; no logic of its own.

Exit codes: 0 done; 1 ``check`` or ``rules test`` found problems; 2 invalid configuration or usage;
3 the database cannot be opened or written.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from . import __version__
from .config import Config, check_all, load_config
from .durations import DurationError, parse_duration
from .errors import ConfigError, StoreError, WatcherError
from .fetch import HttpFetcher
from .notify import Deliverer
from .pipeline import Pipeline
from .store import Store

EXIT_PROBLEMS, EXIT_CONFIG, EXIT_STORE = 1, 2, 3

log = logging.getLogger("watcher")


def _env(name: str, default: str) -> str:
    return os.environ.get(name) or default


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="watcher",
        description="Watch news feeds for the race for AI compute: poll RSS/Atom feeds, match watch rules, "
        "store hits in SQLite, send alerts.",
        epilog="Every global option can also be set by its environment variable.",
    )
    p.add_argument("--version", action="version", version=f"watcher {__version__}")
    g = p.add_argument_group("global options")
    g.add_argument(
        "--feeds",
        metavar="PATH",
        default=_env("WATCHER_FEEDS", "./feeds.yaml"),
        help="feeds file (env WATCHER_FEEDS, default ./feeds.yaml)",
    )
    g.add_argument(
        "--rules",
        metavar="PATH",
        default=_env("WATCHER_RULES", "./rules.yaml"),
        help="rules file (env WATCHER_RULES, default ./rules.yaml)",
    )
    g.add_argument(
        "--db",
        metavar="URL",
        default=_env("WATCHER_DB", "./watcher.db"),
        help="database: a SQLite file path or an SQLAlchemy URL (env WATCHER_DB, default ./watcher.db)",
    )
    g.add_argument(
        "--log-level",
        metavar="LEVEL",
        default=_env("WATCHER_LOG_LEVEL", "INFO").upper(),
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="DEBUG, INFO, WARNING or ERROR (env WATCHER_LOG_LEVEL, default INFO)",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    sp = sub.add_parser(
        "poll",
        help="poll every enabled feed once, send alerts, exit",
        description="One cycle over every enabled feed, then deliver pending alerts and exit. "
        "Exit 0 when the cycle ran, even if some feeds failed (they are reported).",
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
    sp.set_defaults(func=cmd_run)

    sp = sub.add_parser(
        "check",
        help="validate feeds.yaml and rules.yaml",
        description="Validate both files; print every error as file:line: message; exit 1 on any.",
    )
    sp.set_defaults(func=cmd_check)

    sp = sub.add_parser("hits", help="recent hits, newest first", description="Recent hits, newest first.")
    sp.add_argument("--rule", metavar="NAME", help="only this rule's hits")
    sp.add_argument("--since", metavar="DURATION", help="only hits recorded within this period, e.g. 7d")
    sp.add_argument("--limit", metavar="N", type=int, default=50, help="at most N hits (default 50)")
    sp.add_argument("--json", action="store_true", help="print JSON instead of a table")
    sp.set_defaults(func=cmd_hits)

    sp = sub.add_parser(
        "feeds",
        help="each feed's health: last poll, status, failures, entries, hits",
        description="Each feed with its last poll, last HTTP status, consecutive failures, entries stored and hits.",
    )
    sp.add_argument("--json", action="store_true", help="print JSON instead of a table")
    sp.set_defaults(func=cmd_feeds)
    return p


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%Y-%m-%d %H:%M:%S",
    )
    # Never below WARNING, whatever --log-level says: apprise logs raw URLs with passwords at DEBUG,
    # httpx logs full request URLs (tokens in query strings) at INFO.
    for noisy in ("apprise", "httpx", "httpcore", "apscheduler.executors", "aiosmtpd"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.getLogger("apscheduler").setLevel(max(logging.WARNING, getattr(logging, level)))


def _load(args: argparse.Namespace) -> Config:
    return load_config(args.feeds, args.rules)


def _open_store(args: argparse.Namespace) -> Store:
    return Store.open(args.db)


# --- commands ------------------------------------------------------------------------------------------


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
    config = _load(args)
    print(
        f"ok: {len(config.feeds.feeds)} feeds ({len(config.feeds.enabled)} enabled), "
        f"{len(config.rules.rules)} rules, destinations: {', '.join(config.rules.destinations)}"
    )
    return 0


async def _poll(config: Config, store: Store) -> int:
    now = datetime.now(UTC)
    feeds = config.feeds.enabled
    await asyncio.to_thread(store.sync_feeds, [(f.name, f.url) for f in config.feeds.feeds], now)
    d = config.feeds.defaults
    async with HttpFetcher(user_agent=d.user_agent, concurrency=d.concurrency, per_host=d.per_host) as fetcher:
        pipeline = Pipeline(store, fetcher, lambda: config.rules.rules)
        try:
            reports = await pipeline.poll_many(feeds)
        finally:
            pipeline.close()
    deliverer = Deliverer(store, config.rules.destinations)
    delivery = await deliverer.deliver_pending()
    ok = sum(r.status == "ok" for r in reports)
    nm = sum(r.status == "not-modified" for r in reports)
    failed = [r for r in reports if r.status == "failed"]
    print(
        f"polled {len(reports)} feeds: {ok} ok, {nm} not modified, {len(failed)} failed; "
        f"{sum(r.new_entries for r in reports)} new entries, {sum(r.hits for r in reports)} hits, "
        f"{delivery.sent} alerts sent"
        + (f", {delivery.failed} alerts failed (kept for retry)" if delivery.failed else ""),
        file=sys.stderr,
    )
    for r in failed:
        print(f"  failed: {r.feed}: {r.error}", file=sys.stderr)
    return 0


def cmd_poll(args: argparse.Namespace) -> int:
    config = _load(args)
    store = _open_store(args)
    try:
        return asyncio.run(_poll(config, store))
    finally:
        store.close()


def cmd_run(args: argparse.Namespace) -> int:
    from .scheduler import Daemon

    try:
        drain = parse_duration(args.drain_deadline)
    except DurationError as e:
        print(f"watcher run: --drain-deadline: {e}", file=sys.stderr)
        return EXIT_CONFIG
    config = _load(args)
    store = _open_store(args)

    async def main() -> None:
        d = config.feeds.defaults
        async with HttpFetcher(user_agent=d.user_agent, concurrency=d.concurrency, per_host=d.per_host) as fetcher:
            await asyncio.to_thread(store.sync_feeds, [(f.name, f.url) for f in config.feeds.feeds], datetime.now(UTC))
            daemon: Daemon | None = None
            pipeline = Pipeline(store, fetcher, lambda: daemon.config.rules.rules if daemon else config.rules.rules)
            deliverer = Deliverer(store, config.rules.destinations)
            daemon = Daemon(config, pipeline, deliverer, load_config=lambda: _load(args), drain_deadline=drain)
            try:
                await daemon.run()
            finally:
                pipeline.close()

    try:
        asyncio.run(main())
    finally:
        store.close()
    return 0


def _since(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.now(UTC) - timedelta(seconds=parse_duration(value))


def _table(rows: Sequence[Sequence[str]], headers: Sequence[str]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def _short(text: str | None, n: int) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= n else text[: n - 1] + "…"


def cmd_hits(args: argparse.Namespace) -> int:
    try:
        since = _since(args.since)
    except DurationError as e:
        print(f"watcher hits: --since: {e}", file=sys.stderr)
        return EXIT_CONFIG
    store = _open_store(args)
    try:
        rows = store.recent_hits(rule=args.rule, since=since, limit=max(1, args.limit))
    finally:
        store.close()
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return 0
    if not rows:
        print("no hits" + (f" for rule {args.rule}" if args.rule else "") + (f" in {args.since}" if args.since else ""))
        return 0
    table = [
        [
            r["first_seen"][:16].replace("T", " "),
            r["rule"],
            ",".join(r["tags"]),
            r["feed"],
            _short(r["title"], 70),
            _short(", ".join(r["matched"]), 30),
        ]
        for r in rows
    ]
    print(_table(table, ["first seen (UTC)", "rule", "tags", "feed", "title", "matched"]))
    return 0


def cmd_feeds(args: argparse.Namespace) -> int:
    configured: dict[str, Any] = {}
    with contextlib.suppress(ConfigError):  # an invalid file: still show what the database knows
        configured = {f.name: f for f in _load(args).feeds.feeds}
    store = _open_store(args)
    try:
        rows = store.feeds_overview()
    finally:
        store.close()
    known = {r["name"] for r in rows}
    for name, f in configured.items():
        if name not in known:
            rows.append(
                {
                    "name": name,
                    "url": f.url,
                    "title": None,
                    "last_poll": None,
                    "last_success": None,
                    "status": "never polled",
                    "http_status": None,
                    "consecutive_failures": 0,
                    "failing_since": None,
                    "last_error": None,
                    "warning": None,
                    "entries": 0,
                    "hits": 0,
                }
            )
    for r in rows:
        r["in_config"] = r["name"] in configured if configured else None
        r["enabled"] = configured[r["name"]].enabled if r["name"] in configured else None
    rows.sort(key=lambda r: r["name"])
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return 0
    table = [
        [
            r["name"],
            r["status"] + (" (warning)" if r["warning"] else "") + (" (disabled)" if r["enabled"] is False else ""),
            str(r["http_status"] or "-"),
            (r["last_poll"] or "-")[:16].replace("T", " "),
            str(r["consecutive_failures"]),
            str(r["entries"]),
            str(r["hits"]),
            _short(r["last_error"] or r["warning"], 60),
        ]
        for r in rows
    ]
    print(_table(table, ["feed", "status", "http", "last poll (UTC)", "failures", "entries", "hits", "last error"]))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except ConfigError as e:
        for issue in e.issues:
            print(issue, file=sys.stderr)
        print("configuration is invalid: fix the lines above (watcher check lists every problem)", file=sys.stderr)
        return EXIT_CONFIG
    except StoreError as e:
        print(f"watcher: {e}", file=sys.stderr)
        return EXIT_STORE
    except WatcherError as e:
        print(f"watcher: {e}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return 130
