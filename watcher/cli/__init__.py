"""The command line: parse arguments, build the parts, call them. The composition root; no logic of its own.

Each area registers its commands from its own module (``poll.py``: poll, run, check; ``report.py``: hits,
feeds; ``alerts.py``: alerts, notify), listed in :data:`COMMANDS`.

Exit codes: 0 done; 1 ``check`` or ``rules test`` found problems; 2 invalid configuration or usage;
3 the database cannot be opened or written.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from .. import __version__
from ..errors import ConfigError, StoreError, WatcherError
from ..observe.logs import LOG_FORMATS
from . import alerts, db, feedtools, poll, report, rules, status
from .common import EXIT_CONFIG, EXIT_STORE, env, setup_logging

COMMANDS = (poll, report, feedtools, rules, alerts, status, db)
"""Modules that register commands, in the order --help lists them."""


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
        default=env("WATCHER_FEEDS", "./feeds.yaml"),
        help="feeds file (env WATCHER_FEEDS, default ./feeds.yaml)",
    )
    g.add_argument(
        "--rules",
        metavar="PATH",
        default=env("WATCHER_RULES", "./rules.yaml"),
        help="rules file (env WATCHER_RULES, default ./rules.yaml)",
    )
    g.add_argument(
        "--db",
        metavar="URL",
        default=env("WATCHER_DB", "./watcher.db"),
        help="database: a SQLite file path or an SQLAlchemy URL (env WATCHER_DB, default ./watcher.db)",
    )
    g.add_argument(
        "--log-level",
        metavar="LEVEL",
        default=env("WATCHER_LOG_LEVEL", "INFO").upper(),
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="DEBUG, INFO, WARNING or ERROR (env WATCHER_LOG_LEVEL, default INFO)",
    )
    g.add_argument(
        "--log-format",
        metavar="FORMAT",
        default=env("WATCHER_LOG_FORMAT", "text").lower(),
        choices=LOG_FORMATS,
        help="text (human-readable lines) or json (one JSON object per line, with each poll's fields as keys) "
        "(env WATCHER_LOG_FORMAT, default text)",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    for module in COMMANDS:
        module.register(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.log_level, args.log_format)
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
