"""``watcher rules test | explain | backtest``: prove a rule right before it goes live.

None of them sends anything or writes to the database. They read rules.yaml without needing the secrets of its
``notify:`` block (an unset ``${VAR}`` in a destination URL is fine here), so they run in CI as they are.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import sqlalchemy as sa

from ..backtest import BacktestResult, Change, backtest
from ..config import RulesConfig, load_feeds, load_rules
from ..durations import DurationError
from ..errors import ConfigError, StoreError
from ..rules.explain import Explanation, check_examples, describe_outcome, explain_entry, explain_text
from ..rules.matcher import Feedinfo
from ..store import Store, database_url
from .common import EXIT_CONFIG, EXIT_PROBLEMS, Subparsers, short, since
from .progress import Progress, wanted


def register(sub: Subparsers) -> None:
    p = sub.add_parser(
        "rules",
        help="test, explain and backtest the watch rules",
        description="Prove rules.yaml right: run its examples, explain a match, replay stored entries.",
    )
    rsub = p.add_subparsers(dest="rules_command", metavar="SUBCOMMAND", required=True)

    sp = rsub.add_parser(
        "test",
        help="run every rule's examples",
        description="Run every rule's examples (match / no_match). Print each failure as "
        "'rules.yaml:LINE: rule 'x' should match \"...\"' with the line of the example; exit 1 on any failure.",
    )
    sp.set_defaults(func=cmd_test)

    sp = rsub.add_parser(
        "explain",
        help="which rules match a text or a stored entry, and why",
        description="Which rules match, with the terms, amounts and near spans that made them match; for the "
        "others, the first condition that failed.",
    )
    what = sp.add_mutually_exclusive_group(required=True)
    what.add_argument("--text", metavar="TEXT", help="a text to match, read as an entry's title")
    what.add_argument("--entry", metavar="ID", type=int, help="a stored entry (entry_id in `watcher hits --json`)")
    sp.set_defaults(func=cmd_explain)

    sp = rsub.add_parser(
        "backtest",
        help="apply the current rules to stored entries and show the difference",
        description="Apply the current rules to the stored entries and list what would match now and did not "
        "before, and what matched before and would not now. Sends nothing, writes nothing.",
    )
    sp.add_argument("--since", metavar="DURATION", help="only entries first seen within this period, e.g. 30d")
    sp.add_argument("--rule", metavar="NAME", help="only this rule")
    sp.add_argument("--json", action="store_true", help="print JSON instead of text")
    sp.set_defaults(func=cmd_backtest)


class _Placeholders(Mapping[str, str]):
    """The environment, where an unset variable reads as a placeholder URL: these commands never notify."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ

    def __getitem__(self, key: str) -> str:
        return self.environ.get(key) or f"unset://{key}"

    def __contains__(self, key: object) -> bool:
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(self.environ)

    def __len__(self) -> int:
        return len(self.environ)

    def get(self, key: str, default: object = None) -> str | None:  # type: ignore[override]
        # WATCHER_NOTIFY and the like are looked up with get(): keep them as they are (unset is None)
        return self.environ.get(key)


def load(args: argparse.Namespace) -> RulesConfig:
    import os

    return load_rules(args.rules, _Placeholders(os.environ))


def _feedinfo(args: argparse.Namespace) -> dict[str, Feedinfo]:
    """Each configured feed's name and tags (the `feed` field); empty when feeds.yaml is missing or invalid."""
    try:
        return {f.name: Feedinfo(f.name, f.tags) for f in load_feeds(args.feeds).feeds}
    except ConfigError:
        return {}


def _open_existing(db: str) -> Store:
    """The database, which must exist: these commands never create one (nor write to it)."""
    url = database_url(db)
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        path = Path(parsed.database or "").expanduser()
        if not path.is_file():
            raise StoreError(f"no database at {path}: run `watcher poll` first, or point --db at it")
    return Store.open(db, create=False)


# --- test ------------------------------------------------------------------------------------------------


def cmd_test(args: argparse.Namespace) -> int:
    cfg = load(args)
    rules = cfg.rules.rules
    run, failures = check_examples(rules)
    for f in failures:
        verb = "should match" if f.example.should_match else "should not match"
        text = json.dumps(f.example.text, ensure_ascii=False)
        print(f"{args.rules}:{f.example.line}: rule '{f.rule.name}' {verb} {text}")
        print(f"    {f.reason}")
    without = [r.name for r in rules if not r.examples]
    n_rules = f"{len(rules)} rule{'s' if len(rules) != 1 else ''}"
    if failures:
        print(f"{args.rules}: {len(failures)} of {run} examples failed ({n_rules})")
        return EXIT_PROBLEMS
    note = f"; no examples: {', '.join(without)}" if without else ""
    print(f"{args.rules}: {run} examples of {n_rules} pass{note}")
    return 0


# --- explain ---------------------------------------------------------------------------------------------


def cmd_explain(args: argparse.Namespace) -> int:
    cfg = load(args)
    rules = cfg.rules.rules
    if args.text is not None:
        print(f"text: {json.dumps(args.text, ensure_ascii=False)}")
        result = explain_text(rules, args.text)
    else:
        store = _open_existing(args.db)
        try:
            stored = store.stored_entry(args.entry)
        finally:
            store.close()
        if stored is None:
            print(f"watcher rules explain: no entry {args.entry} in the database", file=sys.stderr)
            return EXIT_CONFIG
        feed = _feedinfo(args).get(stored.feed) or Feedinfo(stored.feed)
        print(f"entry {stored.id}: {json.dumps(stored.entry.title, ensure_ascii=False)}")
        print(f"  feed {stored.feed}, first seen {stored.first_seen:%Y-%m-%d %H:%M} UTC, {stored.entry.link or '-'}")
        if stored.hits:
            print("  stored hits: " + ", ".join(sorted(stored.hits)))
        result = explain_entry(rules, stored.entry, feed)
    _print_explanation(args.rules, result)
    return 0


def _print_explanation(path: str, result: Explanation) -> None:
    print("figures found: " + ("; ".join(result.figures) if result.figures else "none"))
    print()
    for v in result.verdicts:
        r = v.rule
        state = "MATCH" if v.matched else "no"
        flags = f" {r.severity} [{', '.join(r.tags)}]" + ("" if r.enabled else " (disabled)")
        print(f"{state:5} {r.name} ({path}:{r.line}){flags}")
        if v.matched:
            if v.terms:
                print("      terms: " + ", ".join(v.terms))
            for kind, values in v.details.items():
                print(f"      {kind}: " + "; ".join(str(x) for x in values))
        else:
            print("      failed at " + describe_outcome(v))
    n = sum(v.matched for v in result.verdicts)
    print()
    print(f"{n} of {len(result.verdicts)} rules match")


# --- backtest --------------------------------------------------------------------------------------------


def cmd_backtest(args: argparse.Namespace) -> int:
    try:
        when = since(args.since)
    except DurationError as e:
        print(f"watcher rules backtest: --since: {e}", file=sys.stderr)
        return EXIT_CONFIG
    cfg = load(args)
    known = {r.name for r in cfg.rules.rules}
    if args.rule is not None and args.rule not in known:
        print(
            f"watcher rules backtest: rule '{args.rule}' is not in {args.rules}: every stored hit of it shows as gone",
            file=sys.stderr,
        )
    feeds = _feedinfo(args)
    store = _open_existing(args.db)
    try:
        total = store.count_entries(when)
        bar = Progress(total, sys.stderr, label="backtest", enabled=wanted(sys.stderr, total))
        result = backtest(cfg.rules, store.stored_entries(when), feeds, rule=args.rule, progress=bar.advance)
        bar.close()
    finally:
        store.close()
    if args.json:
        out = {
            "rules": args.rules,
            "since": args.since,
            "rule": args.rule,
            "entries": result.entries,
            "unchanged": result.unchanged,
            "new": [c.as_dict() for c in result.new],
            "gone": [c.as_dict() for c in result.gone],
        }
        print(json.dumps(out, ensure_ascii=False, indent=2))
        return 0
    _print_backtest(args, result)
    return 0


def _print_backtest(args: argparse.Namespace, result: BacktestResult) -> None:
    scope = (f" since {args.since}" if args.since else "") + (f", rule {args.rule}" if args.rule else "")
    print(
        f"backtest of {args.rules} on {result.entries:,} stored entries{scope}: "
        f"{len(result.new)} would match now, {len(result.gone)} would no longer match, "
        f"{result.unchanged} unchanged"
    )

    def line(sign: str, c: Change) -> str:
        extra = ""
        if c.matched:
            extra = "  [" + short(", ".join(c.matched), 50) + "]"
        elif c.current_version is None:
            extra = "  [rule removed or disabled]"
        when = c.first_seen.strftime("%Y-%m-%d")
        return f"{sign} {c.rule}  #{c.entry_id}  {when}  {c.feed}: {short(c.title, 90)}{extra}"

    if result.new:
        print("\nwould match now, did not before:")
        for c in result.new:
            print(line("+", c))
    if result.gone:
        print("\nmatched before, would not now:")
        for c in result.gone:
            print(line("-", c))
