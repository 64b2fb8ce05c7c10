"""The outbox and the destinations: ``alerts``, ``alerts retry``, ``notify test``."""

from __future__ import annotations

import argparse
import asyncio
import difflib
import json
import sys
from datetime import UTC, datetime
from typing import Any

from ..notify import Renderer, Sender
from ..notify.alertdb import AlertDB
from ..notify.probe import probe
from .common import EXIT_CONFIG, EXIT_PROBLEMS, Subparsers, load, make_deliverer, open_store, short, table

RETRY_LOCK_WAIT = 60.0  # seconds `alerts retry` waits for the daemon's drain in progress to end


def register(sub: Subparsers) -> None:
    sp = sub.add_parser(
        "alerts",
        help="the outbox: pending, failed and sent alerts; `alerts retry` sends them now",
        description="The outbox, newest first: each alert's state, destination, attempts, next attempt and, per "
        "destination URL, what happened (URLs are shown by name and scheme, never in clear). "
        "`watcher alerts retry` sends every pending and dead-lettered alert now, ignoring the backoff.",
    )
    which = sp.add_mutually_exclusive_group()
    which.add_argument("--pending", action="store_true", help="only alerts waiting to be sent (retries, digests)")
    which.add_argument("--failed", action="store_true", help="only dead-lettered alerts (no more automatic retries)")
    which.add_argument("--sent", action="store_true", help="only delivered alerts")
    sp.add_argument("--limit", metavar="N", type=int, default=50, help="at most N alerts (default 50)")
    sp.add_argument("--json", action="store_true", help="print JSON instead of a table")
    sp.set_defaults(func=cmd_alerts)
    actions = sp.add_subparsers(dest="action", metavar="ACTION")
    retry = actions.add_parser(
        "retry",
        help="send every pending and dead-lettered alert now, ignoring the backoff",
        description="Send every pending alert (retries and held digests) and every dead-lettered alert now, "
        "ignoring the backoff; dead-lettered alerts start a fresh count of attempts. Exit 1 if some still fail.",
    )
    retry.set_defaults(func=cmd_alerts_retry)

    sp = sub.add_parser(
        "notify",
        help="check the destinations: `notify test` sends a test alert",
        description="Destinations of rules.yaml. `watcher notify test [--to NAME]` sends a test alert.",
    )
    actions = sp.add_subparsers(dest="action", metavar="ACTION", required=True)
    test = actions.add_parser(
        "test",
        help="send a test alert to one or all destinations and print each result",
        description="Send a made-up alert to every URL of one destination (--to) or of all of them, straight "
        "away (not through the outbox), and print each URL's result. Exit 1 if any failed.",
    )
    test.add_argument("--to", metavar="NAME", help="only this destination (default: all)")
    test.set_defaults(func=cmd_notify_test)


def _state(args: argparse.Namespace) -> str | None:
    if args.pending:
        return "pending"
    if args.failed:
        return "dead"
    if args.sent:
        return "sent"
    return None


def _when(r: dict[str, Any]) -> str:
    value = r["sent_at"] if r["state"] == "sent" else r["next_attempt_at"] or r["last_attempt_at"]
    return (value or "-")[:16].replace("T", " ")


def _state_text(r: dict[str, Any]) -> str:
    if r["state"] == "dead":
        return "failed (dead)"
    if r["state"] == "pending" and r["held_for"]:
        return f"held ({r['held_for'].replace('_', ' ')})"
    return str(r["state"])


def _targets_text(r: dict[str, Any]) -> str:
    parts = []
    for t in r["targets"]:
        text = f"{t['target']}: {t['state']}"
        if t.get("error"):
            text += f" ({t['error']})"
        parts.append(text)
    return "; ".join(parts) or (r["last_error"] or "")


def cmd_alerts(args: argparse.Namespace) -> int:
    store = open_store(args)
    try:
        rows = AlertDB(store).listing(_state(args), max(1, args.limit))
    finally:
        store.close()
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return 0
    if not rows:
        print("no alerts" + (f" ({_state(args)})" if _state(args) else ""))
        return 0
    out = [
        [
            str(r["id"]),
            _state_text(r),
            r["destination"] + (f" (fallback of {r['fallback_from']})" if r["fallback_from"] else ""),
            r["rule"],
            short(r["title"], 50),
            str(r["attempts"]),
            _when(r),
            short(_targets_text(r), 80),
        ]
        for r in rows
    ]
    print(table(out, ["id", "state", "destination", "rule", "title", "attempts", "next / sent (UTC)", "per URL"]))
    return 0


def cmd_alerts_retry(args: argparse.Namespace) -> int:
    config = load(args)
    store = open_store(args)

    async def run() -> int:
        deliverer = make_deliverer(config, store)
        counts = await asyncio.to_thread(AlertDB(store).retry_all, datetime.now(UTC))
        print(f"retrying {counts['dead']} dead-lettered and {counts['pending']} pending alerts now", file=sys.stderr)
        report = await deliverer.deliver_pending(wait=RETRY_LOCK_WAIT)
        if report.busy:
            print("another watcher process kept the outbox busy; it will send them", file=sys.stderr)
            return EXIT_PROBLEMS
        print(
            f"{report.sent} sent, {report.failed} failed"
            + (f" ({report.dead} dead-lettered again)" if report.dead else "")
            + (f", {report.held} held for a digest" if report.held else ""),
            file=sys.stderr,
        )
        if report.failed:
            for r in await asyncio.to_thread(AlertDB(store).listing, None, 200):
                if r["state"] != "sent" and r["last_error"]:
                    print(f"  alert {r['id']} to {r['destination']}: {r['last_error']}", file=sys.stderr)
        return EXIT_PROBLEMS if report.failed else 0

    try:
        return asyncio.run(run())
    finally:
        store.close()


def cmd_notify_test(args: argparse.Namespace) -> int:
    config = load(args)
    destinations = config.rules.destinations
    if args.to is not None and args.to not in destinations:
        close = difflib.get_close_matches(args.to, list(destinations), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else f" (destinations: {', '.join(destinations)})"
        print(f"watcher notify test: no destination named '{args.to}'{hint}", file=sys.stderr)
        return EXIT_CONFIG
    names = [args.to] if args.to else [n for n in destinations if n != "console" or len(destinations) == 1]
    results = asyncio.run(
        probe(destinations, names, sender=Sender(), renderer=Renderer(config.rules.templates), console=sys.stdout)
    )
    for r in results:
        print(f"{r.destination}: {r.target}: " + ("sent" if r.ok else f"FAILED: {r.reason}"))
    return 0 if all(r.ok for r in results) else EXIT_PROBLEMS
