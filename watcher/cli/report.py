"""Reports from the database: ``hits`` and ``feeds``."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from datetime import UTC, datetime
from typing import Any

from .. import export
from ..durations import DurationError, format_duration
from ..errors import ConfigError
from ..export import FORMATS
from ..health import HealthSettings, display_state, health_settings
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
        help="each feed's health: state, last success, status, failures, next poll, entries, hits",
        description="Each feed with its state (ok, backing off, failing since, disabled, moved, silent), last "
        "success, last HTTP status, consecutive failures, next poll and why, mean interval between new entries, "
        "entries stored and hits.",
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


def _hm(iso: str | None) -> str:
    return (iso or "-")[:16].replace("T", " ")


def _state_text(r: dict[str, Any]) -> str:
    state = str(r["state"])
    if state == "failing":
        return f"failing since {_hm(r['failing_since'])}"
    if state == "disabled":
        return f"disabled since {_hm(r['disabled_at'])} (410)"
    if state == "silent":
        return f"silent since {_hm(r['last_entry'])}"
    if r["enabled"] is False:
        return f"{state} (off in feeds.yaml)"
    return state + (" (warning)" if r["warning"] else "")


def _next_text(r: dict[str, Any]) -> str:
    if r["state"] == "disabled" or r["enabled"] is False:
        return "-"
    if not r["next_poll"]:
        return "now" if r["state"] == "never polled" else "-"
    return f"{_hm(r['next_poll'])} ({r['next_poll_reason']})"


def _note(r: dict[str, Any]) -> str:
    if r["moved_to"]:
        return "moved to " + short(r["moved_to"], 70)
    if r["redirect_target"]:
        return f"301/308 to {short(r['redirect_target'], 50)} ({r['redirect_count']} polls)"
    return short(r["last_error"] or r["warning"], 70)


def cmd_feeds(args: argparse.Namespace) -> int:
    configured: dict[str, Any] = {}
    settings = HealthSettings()
    with contextlib.suppress(ConfigError):  # an invalid file: still show what the database knows
        config = load(args)
        configured = {f.name: f for f in config.feeds.feeds}
        settings = health_settings(config)
    store = open_store(args)
    try:
        rows = store.feeds_overview()
        health = {h.name: h for h in store.feed_health()}
    finally:
        store.close()
    now = datetime.now(UTC)
    for r in rows:
        r["state"] = display_state(health[r["name"]], now, settings)
    known = {r["name"] for r in rows}
    for name, f in configured.items():
        if name not in known:
            rows.append(
                {
                    "name": name,
                    "url": f.url,
                    "moved_to": None,
                    "moved_at": None,
                    "title": None,
                    "state": "never polled",
                    "last_poll": None,
                    "last_success": None,
                    "status": "never polled",
                    "http_status": None,
                    "consecutive_failures": 0,
                    "failing_since": None,
                    "disabled_at": None,
                    "next_poll": None,
                    "next_poll_reason": None,
                    "redirect_target": None,
                    "redirect_count": 0,
                    "last_error": None,
                    "warning": None,
                    "entries": 0,
                    "hits": 0,
                    "last_entry": None,
                    "mean_entry_interval": None,
                    "health_alert": None,
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
            _state_text(r),
            _hm(r["last_success"]),
            str(r["http_status"] or ("error" if r["status"] == "failed" else "-")),
            str(r["consecutive_failures"]),
            _next_text(r),
            format_duration(r["mean_entry_interval"]) if r["mean_entry_interval"] is not None else "-",
            str(r["entries"]),
            str(r["hits"]),
            _note(r),
        ]
        for r in rows
    ]
    headers = [
        "feed",
        "state",
        "last success (UTC)",
        "last status",
        "failures",
        "next poll (UTC)",
        "new entry every",
        "entries",
        "hits",
        "note",
    ]
    print(table(rows_out, headers))
    return 0
