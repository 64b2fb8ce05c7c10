"""Reports from the database: ``hits`` and ``feeds``."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from typing import Any

from .. import export
from ..durations import DurationError
from ..errors import ConfigError
from ..export import FORMATS
from .common import EXIT_CONFIG, Subparsers, load, open_store, short, since, table


def register(sub: Subparsers) -> None:
    sp = sub.add_parser("hits", help="recent hits, newest first", description="Recent hits, newest first.")
    sp.add_argument("--rule", metavar="NAME", help="only this rule's hits")
    sp.add_argument("--since", metavar="DURATION", help="only hits recorded within this period, e.g. 7d")
    sp.add_argument("--limit", metavar="N", type=int, default=50, help="at most N hits (default 50; 0: all)")
    sp.add_argument(
        "--format",
        choices=FORMATS,
        default=None,
        help="table (default), csv (a header row, UTF-8, lists joined with '; '), json (an array) or jsonl "
        "(one object per line)",
    )
    sp.add_argument("--json", action="store_true", help="the same as --format json")
    sp.set_defaults(func=cmd_hits)

    sp = sub.add_parser(
        "feeds",
        help="each feed's health: last poll, status, failures, entries, hits",
        description="Each feed with its last poll, last HTTP status, consecutive failures, entries stored and hits.",
    )
    sp.add_argument("--json", action="store_true", help="print JSON instead of a table")
    sp.set_defaults(func=cmd_feeds)


def cmd_hits(args: argparse.Namespace) -> int:
    try:
        when = since(args.since)
    except DurationError as e:
        print(f"watcher hits: --since: {e}", file=sys.stderr)
        return EXIT_CONFIG
    if args.json and args.format not in (None, "json"):
        print(f"watcher hits: --json means --format json; it cannot go with --format {args.format}", file=sys.stderr)
        return EXIT_CONFIG
    fmt = "json" if args.json else args.format or "table"
    store = open_store(args)
    try:
        rows = store.recent_hits(rule=args.rule, since=when, limit=args.limit if args.limit > 0 else None)
    finally:
        store.close()
    if fmt != "table":
        sys.stdout.flush()
        sys.stdout.buffer.write(export.render(rows, fmt).encode("utf-8"))  # UTF-8 whatever the locale says
        sys.stdout.buffer.flush()
        return 0
    if not rows:
        print("no hits" + (f" for rule {args.rule}" if args.rule else "") + (f" in {args.since}" if args.since else ""))
        return 0
    rows_out = [
        [
            r["first_seen"][:16].replace("T", " "),
            r["rule"],
            ",".join(r["tags"]),
            r["feed"],
            short(r["title"], 70),
            short(", ".join(r["matched"]), 30),
        ]
        for r in rows
    ]
    print(table(rows_out, ["first seen (UTC)", "rule", "tags", "feed", "title", "matched"]))
    return 0


def cmd_feeds(args: argparse.Namespace) -> int:
    configured: dict[str, Any] = {}
    with contextlib.suppress(ConfigError):  # an invalid file: still show what the database knows
        configured = {f.name: f for f in load(args).feeds.feeds}
    store = open_store(args)
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
    rows_out = [
        [
            r["name"],
            r["status"] + (" (warning)" if r["warning"] else "") + (" (disabled)" if r["enabled"] is False else ""),
            str(r["http_status"] or "-"),
            (r["last_poll"] or "-")[:16].replace("T", " "),
            str(r["consecutive_failures"]),
            str(r["entries"]),
            str(r["hits"]),
            short(r["last_error"] or r["warning"], 60),
        ]
        for r in rows
    ]
    print(table(rows_out, ["feed", "status", "http", "last poll (UTC)", "failures", "entries", "hits", "last error"]))
    return 0
