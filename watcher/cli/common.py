"""What every command shares: global options, logging, loading, tables, exit codes."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from ..config import Config, load_config
from ..durations import parse_duration
from ..notify import Deliverer, Renderer
from ..notify.lock import DeliveryLock
from ..observe.logs import formatter
from ..store import Store

EXIT_PROBLEMS, EXIT_CONFIG, EXIT_STORE = 1, 2, 3

if TYPE_CHECKING:
    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]
else:
    Subparsers = argparse._SubParsersAction
"""What `parser.add_subparsers()` returns; each command module registers its commands on it."""


def env(name: str, default: str) -> str:
    return os.environ.get(name) or default


def setup_logging(level: str, fmt: str = "text") -> None:
    """Log to stderr at `level`, as text lines or JSON lines (`fmt`: see watcher/observe/logs.py)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(fmt))
    logging.basicConfig(level=getattr(logging, level), handlers=[handler])
    # Never below WARNING, whatever --log-level says: apprise logs raw URLs with passwords at DEBUG,
    # httpx logs full request URLs (tokens in query strings) at INFO, and urllib3 (under apprise's requests)
    # logs each request's path at DEBUG: a Slack webhook's path is its token (tests/test_ops_daemon.py).
    for noisy in ("apprise", "httpx", "httpcore", "urllib3", "requests", "apscheduler.executors", "aiosmtpd"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.getLogger("apscheduler").setLevel(max(logging.WARNING, getattr(logging, level)))
    # Alembic narrates every check of the schema at INFO (a dozen lines before each command's output);
    # watcher.store logs the one fact that matters: "database schema upgraded from X to Y".
    logging.getLogger("alembic").setLevel(max(logging.WARNING, getattr(logging, level)))


SWITCH_INTERVAL = 0.02  # seconds


def tune_for_polling() -> None:
    """Let each thread hold the GIL longer before CPython hands it over (default 5 ms, here 20 ms).

    A poll keeps three busy threads (the event loop: HTTP and matching; the parse thread; the database thread)
    and each forced hand-over costs the next one its CPU caches: with 20 ms a first poll takes ~8% less CPU
    (bench/poll.py at 2,000 feeds: 1.56x -> 1.48x the feedparser floor). The cost: while the parse
    thread runs, the event loop may answer a socket up to 20 ms later, nothing next to feed deadlines.
    Called by ``watcher poll`` and ``watcher run``, which own their process.
    """
    sys.setswitchinterval(SWITCH_INTERVAL)


def load(args: argparse.Namespace) -> Config:
    return load_config(args.feeds, args.rules)


def open_store(args: argparse.Namespace) -> Store:
    return Store.open(args.db)


def make_deliverer(config: Config, store: Store) -> Deliverer:
    """The outbox deliverer for this configuration, locked against other processes on the same database."""
    rules = config.rules
    return Deliverer(
        store,
        rules.destinations,
        rule_policies=rules.rule_policies,
        renderer=Renderer(rules.templates),
        lock=DeliveryLock.beside(store.sqlite_file),
    )


def since(value: str | None) -> datetime | None:
    """`--since 7d` -> the datetime 7 days ago (DurationError on a bad value)."""
    if not value:
        return None
    return datetime.now(UTC) - timedelta(seconds=parse_duration(value))


def table(rows: Sequence[Sequence[str]], headers: Sequence[str]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def short(text: str | None, n: int) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= n else text[: n - 1] + "…"
