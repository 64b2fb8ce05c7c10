"""``watcher status``: the daemon's view on one screen, read from the database (the daemon need not run)."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import urllib.error
import urllib.request
from datetime import UTC, datetime
from typing import Any

from ..config import Config
from ..durations import format_duration
from ..errors import ConfigError
from ..observe.health import overdue
from ..observe.http import HttpError, parse_address
from ..observe.reader import reader_engine
from ..observe.service import schedule_of
from ..observe.snapshot import Snapshot, read_snapshot
from .common import Subparsers, env, load, open_store, short


def register(sub: Subparsers) -> None:
    sp = sub.add_parser(
        "status",
        help="one screen: feeds ok/failing/backing off, last cycle, hits today, alerts pending and failed",
        description="The daemon's view from the database: feeds ok / failing / backing off, the last poll, "
        "hits today (UTC) by watch item, alerts pending and failed.",
    )
    sp.add_argument("--json", action="store_true", help="print JSON instead of text")
    sp.set_defaults(func=cmd_status)

    sp = sub.add_parser(
        "health",
        help="ask a running daemon's /healthz; exit 0 when healthy (the container's health check)",
        description="GET /healthz of the daemon started with `watcher run --http ADDR` and print its answer. "
        "Exit 0 when healthy, 1 otherwise (unhealthy, unreachable, or no address): what Docker's HEALTHCHECK "
        "expects. A wildcard address (0.0.0.0, ::) is asked on the loopback interface.",
    )
    sp.add_argument(
        "--http",
        metavar="ADDR",
        default=env("WATCHER_HTTP", ""),
        help="the daemon's HOST:PORT (env WATCHER_HTTP, as given to watcher run)",
    )
    sp.add_argument("--timeout", metavar="SECONDS", type=float, default=10.0, help="give up after this (default 10)")
    sp.set_defaults(func=cmd_health)


def _iso(dt: datetime | None) -> str | None:
    return dt.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z") if dt else None


def _ago(now: datetime, dt: datetime | None) -> str:
    return "never" if dt is None else format_duration(max(0.0, (now - dt).total_seconds())) + " ago"


def status_data(snap: Snapshot, config: Config | None) -> dict[str, Any]:
    """The JSON form of `watcher status` (the text form prints the same facts)."""
    now = snap.taken_at
    last = snap.last_poll
    stale = None
    if config is not None and last is not None and last.last_poll_at is not None:
        timing = schedule_of(config).feeds
        polled = [(f, timing[f.name]) for f in snap.feeds if f.name in timing and f.last_poll_at and not f.gone_at]
        if polled and all(overdue(f, t, now, now, 0.0) for f, t in polled):
            stale = f"no feed was polled when due (last poll {_ago(now, last.last_poll_at)}): is `watcher run` running?"
    problems = [f for f in snap.feeds if f.state(now) in ("failing", "backoff", "disabled")]
    return {
        "now": _iso(now),
        "last_poll": {
            "at": _iso(last.last_poll_at) if last else None,
            "feed": last.name if last else None,
            "status": last.last_status if last else None,
        },
        "last_success": _iso(snap.last_success_at),
        "stale": stale,
        "feeds": snap.feeds_by_state() | {"enabled": len(snap.feeds)},
        "failing": [
            {
                "feed": f.name,
                "state": f.state(now),
                "failures": f.consecutive_failures,
                "since": _iso(f.failing_since),
                "next_poll": _iso(f.next_poll_at),
                "error": f.last_error,
            }
            for f in problems
        ],
        "hits_today": {"total": snap.hits_today, "by_watch_item": dict(sorted(snap.hits_today_by_item.items()))},
        "alerts": {
            "pending": snap.alerts_by_state.get("pending", 0),
            "retrying": snap.alerts_retrying,
            "oldest_pending": _iso(snap.oldest_pending_alert),
            "failed": snap.alerts_by_state.get("dead", 0),
            "sent": snap.alerts_by_state.get("sent", 0),
        },
        "entries": {"stored": snap.entries, "pruned": snap.entries_pruned},
    }


def render(data: dict[str, Any], snap: Snapshot) -> str:
    now = snap.taken_at
    last = snap.last_poll
    lines = [f"watcher status at {now:%Y-%m-%d %H:%M:%S} UTC"]
    if last is None:
        lines.append("last poll     never (start the daemon with `watcher run`)")
    else:
        lines.append(
            f"last poll     {_ago(now, last.last_poll_at)} ({last.name}: {last.last_status}); "
            f"last success {_ago(now, snap.last_success_at)}"
        )
    if data["stale"]:
        lines.append(f"              STALE: {data['stale']}")
    f = data["feeds"]
    lines.append(
        f"feeds         {f['enabled']} enabled: {f['ok']} ok, {f['failing']} failing, {f['backoff']} backing off, "
        f"{f['disabled']} disabled (410), {f['never']} never polled"
    )
    for p in data["failing"]:
        what = {"backoff": "backing off", "disabled": "disabled"}.get(p["state"], "failing")
        extra = f", next try {p['next_poll'][11:16]} UTC" if p["next_poll"] and p["state"] == "backoff" else ""
        lines.append(
            f"  {what:<11} {p['feed']}: {p['failures']} failures since {(p['since'] or '-')[:16].replace('T', ' ')}"
            f"{extra}: {short(p['error'], 80)}"
        )
    h = data["hits_today"]
    items = ", ".join(f"{k} {v}" for k, v in h["by_watch_item"].items())
    lines.append(f"hits today    {h['total']}" + (f" ({items})" if items else "") + " since 00:00 UTC")
    a = data["alerts"]
    oldest = f", oldest {_ago(now, snap.oldest_pending_alert)}" if snap.oldest_pending_alert else ""
    lines.append(
        f"alerts        {a['pending']} pending ({a['retrying']} retrying{oldest}), {a['failed']} failed "
        f"(dead-lettered), {a['sent']} sent"
    )
    e = data["entries"]
    lines.append(f"entries       {e['stored']} stored ({e['pruned']} pruned to their dedupe key)")
    return "\n".join(lines)


def cmd_status(args: argparse.Namespace) -> int:
    config: Config | None = None
    with contextlib.suppress(ConfigError):  # an invalid file: still show what the database knows
        config = load(args)
    store = open_store(args)
    reader = reader_engine(store.engine.url)
    try:
        with reader.connect() as conn:
            names = [f.name for f in config.feeds.enabled] if config else None
            snap = read_snapshot(conn, datetime.now(UTC), names, count_pruned=True)
    finally:
        reader.dispose()
        store.close()
    data = status_data(snap, config)
    print(json.dumps(data, ensure_ascii=False, indent=2) if args.json else render(data, snap))
    return 0


def probe(address: str, timeout: float) -> tuple[bool, str]:
    """(healthy, what /healthz said) for the daemon at `address`; never raises."""
    try:
        host, port = parse_address(address)
    except HttpError as e:
        return False, str(e)
    host = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(host, host)
    url = f"http://{f'[{host}]' if ':' in host else host}:{port}/healthz"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through a proxy
    try:
        with opener.open(url, timeout=timeout) as r:
            return r.status == 200, r.read().decode("utf-8", "replace").strip()
    except urllib.error.HTTPError as e:
        return False, e.read().decode("utf-8", "replace").strip() or f"HTTP {e.code}"
    except (OSError, ValueError) as e:
        return False, f"cannot reach {url}: {getattr(e, 'reason', e)}"


def cmd_health(args: argparse.Namespace) -> int:
    if not args.http:
        print("watcher health: no address: pass --http HOST:PORT or set WATCHER_HTTP", file=sys.stderr)
        return 1  # not 2: Docker reserves exit code 2 in health checks
    ok, said = probe(args.http, args.timeout)
    print(said, file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1
