"""Feeds in and out: ``watcher feeds discover URL``, ``watcher feeds import FILE.opml``, ``watcher feeds export``.

They hang under ``watcher feeds`` (registered by report.py), as optional actions: ``watcher feeds`` alone still
prints the health table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from ..config import FeedDefaults, load_feeds
from ..discover import Discovery, find_feeds
from ..errors import ConfigError
from ..feedsfile import NewFeed, add_feeds
from ..fetch import HttpFetcher
from ..opml import ExportFeed, parse_opml, render_opml
from .common import EXIT_CONFIG, EXIT_PROBLEMS, Subparsers, short, table


def register(sub: Subparsers) -> None:
    feeds = sub.choices.get("feeds")
    if feeds is None:
        raise RuntimeError("cli.feedtools must be registered after cli.report, which defines `watcher feeds`")
    feeds.epilog = (
        "actions: 'watcher feeds discover URL' lists the feeds a page advertises; 'watcher feeds import "
        "FILE.opml' adds an OPML file's feeds to feeds.yaml; 'watcher feeds export' writes feeds.yaml as OPML."
    )
    actions = feeds.add_subparsers(dest="feeds_action", metavar="ACTION", required=False)

    sp = actions.add_parser(
        "discover",
        help="list the feeds a web page advertises",
        description='Fetch URL and list the feeds it advertises (<link rel="alternate"> of RSS, Atom or JSON '
        "Feed type), resolved to absolute URLs. When it advertises none, the usual paths (/feed, /rss.xml, "
        "/atom.xml...) are tried and listed only if they really serve a feed. Exit 1 when none is found.",
    )
    sp.add_argument("url", metavar="URL", help="a web page (or a feed) URL, http:// or https://")
    sp.add_argument("--json", dest="discover_json", action="store_true", help="print JSON instead of a table")
    sp.set_defaults(func=cmd_discover)

    sp = actions.add_parser(
        "import",
        help="add the feeds of an OPML file to feeds.yaml",
        description="Append every feed of an OPML file (any feed reader's export) to feeds.yaml, keeping its "
        "comments and layout. Feeds already there (same URL) are skipped and listed; folders become tags.",
    )
    sp.add_argument("file", metavar="FILE.opml", help="the OPML file to read")
    sp.set_defaults(func=cmd_import)

    sp = actions.add_parser(
        "export",
        help="write feeds.yaml's feeds as OPML 2.0",
        description="Write every feed of feeds.yaml as OPML 2.0 (tags as categories, disabled feeds as "
        "comments), to standard output or a file.",
    )
    sp.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of standard output")
    sp.set_defaults(func=cmd_export)


def _defaults(feeds_path: str) -> FeedDefaults:
    """feeds.yaml's defaults (User-Agent, timeouts) when it loads; the built-in ones otherwise."""
    try:
        return load_feeds(feeds_path).defaults
    except ConfigError:
        return FeedDefaults()


def cmd_discover(args: argparse.Namespace) -> int:
    if urlsplit(args.url).scheme.lower() not in ("http", "https"):
        print(f"watcher feeds discover: {args.url!r} is not an http:// or https:// URL", file=sys.stderr)
        return EXIT_CONFIG
    d = _defaults(args.feeds)

    async def go() -> Discovery:
        async with HttpFetcher(user_agent=d.user_agent, concurrency=4, per_host=d.per_host) as fetcher:
            return await find_feeds(
                fetcher, args.url, now=datetime.now(UTC), timeout=d.timeout, deadline=min(d.deadline, 30.0)
            )

    found = asyncio.run(go())
    if found.error:
        print(f"watcher feeds discover: cannot fetch {args.url}: {found.error}", file=sys.stderr)
        return EXIT_PROBLEMS
    if args.discover_json:
        print(json.dumps([f.__dict__ for f in found.feeds], ensure_ascii=False, indent=2))
    elif found.feeds:
        rows = [[f.url, f.kind, short(f.title, 50) or "-", f.found] for f in found.feeds]
        print(table(rows, ["feed url", "type", "title", "found"]))
    if not found.feeds:
        tried = f"; tried {len(found.probed)} usual paths, none serves a feed" if found.probed else ""
        print(f"{found.url} advertises no feed{tried}", file=sys.stderr)
        return EXIT_PROBLEMS
    if found.feeds[0].found == "itself":
        print(f"{found.url} is itself a feed: use it as the url in feeds.yaml", file=sys.stderr)
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    try:
        data = Path(args.file).read_bytes()
    except OSError as e:
        print(f"watcher feeds import: cannot read {args.file}: {e.strerror}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        found = parse_opml(data, args.file)
    except ConfigError as e:
        for issue in e.issues:
            print(issue, file=sys.stderr)
        return EXIT_CONFIG
    if not found:
        print(f"{args.file} lists no feeds (no <outline> with an xmlUrl)", file=sys.stderr)
        return EXIT_PROBLEMS
    new = [NewFeed(f.url, f.title, f.tags, f.enabled, f"{args.file}:{f.line}") for f in found]
    try:
        result = add_feeds(args.feeds, new)
    except ConfigError as e:
        for issue in e.issues:
            print(issue, file=sys.stderr)
        print(f"{args.feeds} was not changed: fix the lines above first", file=sys.stderr)
        return EXIT_CONFIG
    except OSError as e:
        print(f"watcher feeds import: cannot write {args.feeds}: {e.strerror or e}", file=sys.stderr)
        return EXIT_CONFIG
    for name, f in result.added:
        print(f"added    {name}: {f.url}")
    for f, why in result.skipped:
        print(f"skipped  {f.url} ({f.origin}): {why}")
    print(
        f"{len(result.added)} feed{'s' if len(result.added) != 1 else ''} added to {args.feeds}, "
        f"{len(result.skipped)} skipped",
        file=sys.stderr,
    )
    if result.relaid_lines:
        print(f"note: {result.relaid_lines} existing line(s) of {args.feeds} were re-indented", file=sys.stderr)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    config = load_feeds(args.feeds)
    text = render_opml(
        [ExportFeed(f.name, f.url, f.tags, f.enabled) for f in config.feeds],
        title="watcher feeds",
        now=datetime.now(UTC),
    )
    if not args.output:
        sys.stdout.write(text)
        return 0
    out = Path(args.output)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
            os.replace(tmp, out)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except OSError as e:
        print(f"watcher feeds export: cannot write {out}: {e.strerror or e}", file=sys.stderr)
        return EXIT_CONFIG
    print(f"wrote {len(config.feeds)} feeds to {out}", file=sys.stderr)
    return 0
