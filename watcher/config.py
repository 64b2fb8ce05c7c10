"""feeds.yaml and rules.yaml -> validated, immutable configuration.

Every problem is reported as ``file:line: message (hint)``; loading collects them all, then raises one
:class:`~watcher.errors.ConfigError`. Nothing here touches the network or the database.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from . import __version__
from .errors import ConfigError, ConfigIssue
from .notify.destinations import KINDS
from .notify.destinations import Destination as Destination  # re-exported: defined with the notify package
from .notify.destinations import Secret as Secret
from .notify.policy import PolicyOverride
from .notify.render import Renderer
from .notify.settings import CONSOLE as CONSOLE
from .notify.settings import parse_destinations, parse_override
from .retention import RetentionPolicy, parse_retention
from .rules import Rule, RuleSet
from .rules.compile import RuleCompiler
from .yamlsrc import Source

DEFAULT_USER_AGENT = f"watcher/{__version__} (+https://github.com/watcher-news/watcher; news monitoring)"

# --- feeds.yaml ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FeedDefaults:
    """The ``defaults:`` block of feeds.yaml: what every feed gets unless it says otherwise."""

    interval: float = 15 * 60  # seconds between polls of one feed
    timeout: float = 10.0  # connect and read timeout, seconds
    deadline: float = 60.0  # total time one fetch may take, seconds
    max_size: int = 10 * 1000 * 1000  # bytes; a larger body is cut and the poll fails
    user_agent: str = DEFAULT_USER_AGENT
    concurrency: int = 8  # feeds fetched at once, in all
    per_host: int = 2  # feeds fetched at once from one host
    start_offset: float | None = None  # max random delay before a feed's first poll; None: its interval
    backfill_alert_window: float = 2 * 86400  # first poll: alert only on entries published this recently
    max_backoff: float = 6 * 3600  # longest wait between polls of a failing feed; also caps Retry-After
    max_cache_wait: float = 6 * 3600  # longest delay Cache-Control max-age / Expires / RSS <ttl> may impose
    ops_notify: tuple[str, ...] = (CONSOLE,)  # destinations (rules.yaml notify:) of feed-health alerts
    alert_failing_after: float = 86400  # a feed failing this long gets a health alert
    alert_silent_after: float = 3 * 86400  # a feed that usually publishes daily, silent this long: alert


@dataclass(frozen=True)
class FeedConfig:
    """One feed of feeds.yaml."""

    name: str  # unique; the key under which the store keeps its state
    url: str  # http(s):// or file://
    interval: float  # seconds between polls
    tags: tuple[str, ...] = ()  # free labels, matchable by rules through the `feed` field
    enabled: bool = True
    timeout: float = 10.0
    deadline: float = 60.0
    max_size: int = 10 * 1000 * 1000
    backfill_alert_window: float = 2 * 86400
    line: int | None = None  # where the feed is defined, for messages
    max_backoff: float = 6 * 3600  # longest wait between polls while failing; also caps Retry-After
    max_cache_wait: float = 6 * 3600  # longest delay that max-age / Expires / <ttl> may impose


@dataclass(frozen=True)
class FeedsConfig:
    path: str
    defaults: FeedDefaults
    feeds: tuple[FeedConfig, ...]
    retention: RetentionPolicy = field(default_factory=RetentionPolicy)  # the `retention:` block (retention.py)
    ops_notify_line: int | None = None  # where defaults.ops_notify is written, for cross-file errors

    @property
    def enabled(self) -> tuple[FeedConfig, ...]:
        return tuple(f for f in self.feeds if f.enabled)


DEFAULT_KEYS = tuple(f.name for f in dataclasses.fields(FeedDefaults))
FEED_KEYS = (
    "name",
    "url",
    "interval",
    "tags",
    "enabled",
    "timeout",
    "deadline",
    "max_size",
    "backfill_alert_window",
    "max_backoff",
    "max_cache_wait",
)


def _feed_name_from_url(url: str) -> str:
    parts = urlsplit(url)
    base = (parts.netloc + parts.path).strip("/") or url
    return re.sub(r"[^A-Za-z0-9._-]+", "-", base).strip("-")[:80] or "feed"


def load_feeds(path: str | os.PathLike[str]) -> FeedsConfig:
    src = Source.from_file(path)
    doc = src.load()
    src.raise_if_issues()
    if doc is None:
        doc = {}
    if not isinstance(doc, Mapping):
        src.error(1, "feeds.yaml must be a mapping with 'defaults:' and 'feeds:'")
        src.raise_if_issues()
    src.check_keys(doc, ("defaults", "feeds", "retention"), "feeds.yaml")
    retention = parse_retention(src, doc)
    d = FeedDefaults()
    ops_line = None
    block = src.mapping(doc, "defaults", "feeds.yaml")
    if block is not None:
        src.check_keys(block, DEFAULT_KEYS, "defaults")
        what = "defaults"
        start_offset = block.get("start_offset")
        d = FeedDefaults(
            interval=src.duration(block, "interval", what, d.interval),
            timeout=src.duration(block, "timeout", what, d.timeout),
            deadline=src.duration(block, "deadline", what, d.deadline),
            max_size=src.size(block, "max_size", what, d.max_size),
            user_agent=src.string(block, "user_agent", what, d.user_agent) or d.user_agent,
            concurrency=src.integer(block, "concurrency", what, d.concurrency, minimum=1),
            per_host=src.integer(block, "per_host", what, d.per_host, minimum=1),
            start_offset=None if start_offset is None else src.duration(block, "start_offset", what, 0),
            backfill_alert_window=src.duration(block, "backfill_alert_window", what, d.backfill_alert_window),
            max_backoff=src.duration(block, "max_backoff", what, d.max_backoff),
            max_cache_wait=src.duration(block, "max_cache_wait", what, d.max_cache_wait),
            ops_notify=src.strings(block, "ops_notify", what) or d.ops_notify,
            alert_failing_after=src.duration(block, "alert_failing_after", what, d.alert_failing_after),
            alert_silent_after=src.duration(block, "alert_silent_after", what, d.alert_silent_after),
        )
        ops_line = Source.line_of(block, "ops_notify") if block.get("ops_notify") is not None else None
        for key in ("interval", "max_backoff"):
            if block.get(key) is not None and getattr(d, key) < 1:
                src.error(Source.line_of(block, key), f"'{key}' in defaults must be at least 1s")
    feeds: list[FeedConfig] = []
    names: dict[str, int | None] = {}
    seq = src.sequence(doc, "feeds", "feeds.yaml")
    for i, node in enumerate(seq or ()):
        line = Source.line_of(seq, i)
        if not isinstance(node, Mapping):
            src.error(line, f"feed {i + 1} must be a mapping with at least 'url'", "write - url: https://...")
            continue
        url = src.string(node, "url", f"feed {i + 1}")
        name = src.string(node, "name", f"feed {i + 1}")
        what = f"feed '{name or url or i + 1}'"
        src.check_keys(node, FEED_KEYS, what)
        if not url:
            src.error(line, f"{what} has no 'url'", "add url: https://example.com/feed.xml")
            continue
        scheme = urlsplit(url).scheme.lower()
        if scheme not in ("http", "https", "file"):
            src.error(Source.line_of(node, "url"), f"url of {what} must start with http://, https:// or file://")
            continue
        name = name or _feed_name_from_url(url)
        if name in names:
            src.error(
                line,
                f"feed name '{name}' is used twice",
                f"first used on line {names[name]}; give each feed a unique name",
            )
            continue
        names[name] = line
        interval = src.duration(node, "interval", what, d.interval)
        if interval < 1:
            src.error(Source.line_of(node, "interval"), f"'interval' of {what} must be at least 1s")
        max_backoff = src.duration(node, "max_backoff", what, d.max_backoff)
        if max_backoff < 1:
            src.error(Source.line_of(node, "max_backoff"), f"'max_backoff' of {what} must be at least 1s")
        feeds.append(
            FeedConfig(
                name=name,
                url=url,
                interval=interval,
                tags=src.strings(node, "tags", what),
                enabled=src.boolean(node, "enabled", what, True),
                timeout=src.duration(node, "timeout", what, d.timeout),
                deadline=src.duration(node, "deadline", what, d.deadline),
                max_size=src.size(node, "max_size", what, d.max_size),
                backfill_alert_window=src.duration(node, "backfill_alert_window", what, d.backfill_alert_window),
                line=line,
                max_backoff=max_backoff,
                max_cache_wait=src.duration(node, "max_cache_wait", what, d.max_cache_wait),
            )
        )
    src.raise_if_issues()
    return FeedsConfig(path=str(path), defaults=d, feeds=tuple(feeds), retention=retention, ops_notify_line=ops_line)


# --- rules.yaml ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RulesConfig:
    path: str
    destinations: Mapping[str, Destination]
    rules: RuleSet
    default_notify: tuple[str, ...] = (CONSOLE,)
    rule_policies: Mapping[str, PolicyOverride] = field(default_factory=dict)  # rule name -> its delivery keys
    templates: str | None = None  # the user's templates directory (absolute), or None for the built-in ones

    def rule(self, name: str) -> Rule | None:
        return self.rules.get(name)


RULES_FILE_KEYS = ("notify", "defaults", "rates", "entities", "rules", "templates")
RULES_DEFAULT_KEYS = ("notify", "severity")


def load_rules(path: str | os.PathLike[str], environ: Mapping[str, str] | None = None) -> RulesConfig:
    env = os.environ if environ is None else environ
    src = Source.from_file(path)
    doc = src.load()
    src.raise_if_issues()
    if doc is None:
        doc = {}
    if not isinstance(doc, Mapping):
        src.error(1, "rules.yaml must be a mapping with 'rules:' (and 'notify:', 'defaults:', 'entities:', 'rates:')")
        src.raise_if_issues()
    src.check_keys(doc, RULES_FILE_KEYS, "rules.yaml")

    destinations = parse_destinations(src, src.mapping(doc, "notify", "rules.yaml"), env)
    templates = _templates_dir(src, doc, Path(path))

    default_notify: tuple[str, ...]
    if "default" in destinations:
        default_notify = ("default",)
    elif len(destinations) == 2:  # the console plus exactly one configured destination
        default_notify = (next(n for n in destinations if n != CONSOLE),)
    else:
        default_notify = (CONSOLE,)
    dblock = src.mapping(doc, "defaults", "rules.yaml")
    default_severity = "notable"
    if dblock is not None:
        src.check_keys(dblock, RULES_DEFAULT_KEYS, "defaults")
        names = src.strings(dblock, "notify", "defaults")
        if names:
            _check_destinations(src, names, destinations, Source.line_of(dblock, "notify"), "defaults")
            default_notify = names
        default_severity = src.string(dblock, "severity", "defaults", default_severity) or default_severity

    compiler = RuleCompiler(src)
    compiler.read_rates(doc)
    compiler.read_entities(doc)
    seq = src.sequence(doc, "rules", "rules.yaml")
    rules = compiler.rules(seq or [])
    resolved: list[Rule] = []
    policies: dict[str, PolicyOverride] = {}
    nodes = {Source.line_of(seq, i): n for i, n in enumerate(seq or ()) if isinstance(n, Mapping)}
    for r in rules:
        node = nodes.get(r.line, {})
        override = parse_override(src, node, f"rule '{r.name}'")
        if override is not None:
            policies[r.name] = override
        if r.notify:
            _check_destinations(src, r.notify, destinations, Source.line_of(node, "notify"), f"rule '{r.name}'")
        changes: dict[str, Any] = {}
        if not r.notify:
            changes["notify"] = default_notify
        if node.get("severity") is None:
            changes["severity"] = default_severity
        resolved.append(dataclasses.replace(r, **changes) if changes else r)
    src.raise_if_issues()
    return RulesConfig(
        path=str(path),
        destinations=destinations,
        rules=RuleSet(resolved),
        default_notify=default_notify,
        rule_policies=policies,
        templates=templates,
    )


def _templates_dir(src: Source, doc: Mapping[str, Any], rules_path: Path) -> str | None:
    """``templates: DIR`` (relative to rules.yaml): must be a folder whose templates load and render."""
    value = src.string(doc, "templates", "rules.yaml")
    if not value:
        return None
    line = Source.line_of(doc, "templates")
    folder = (rules_path.parent / Path(value).expanduser()).resolve()
    if not folder.is_dir():
        src.error(line, f"templates folder {folder} does not exist", "create it, or remove templates:")
        return None
    for name in sorted(p.name for p in folder.glob("*.j2")):
        if name not in {f"{k}.j2" for k in KINDS}:
            hint = "template files are named " + ", ".join(f"{k}.j2" for k in KINDS)
            src.error(line, f"unknown template {folder / name}", hint)
    for problem in Renderer(folder).check():
        src.issues.append(ConfigIssue(problem.path, problem.line, problem.message, "fix the template"))
    return str(folder)


def _check_destinations(
    src: Source, names: tuple[str, ...], known: Mapping[str, Destination], line: int | None, what: str
) -> None:
    import difflib

    for n in names:
        if n not in known:
            close = difflib.get_close_matches(n, list(known), n=1)
            hint = f"did you mean '{close[0]}'?" if close else "define it under notify: at the top of rules.yaml"
            src.error(line, f"{what} notifies '{n}', which is not a destination", hint)


def cross_check(feeds: FeedsConfig, rules: RulesConfig) -> list[ConfigIssue]:
    """What only both files together can tell: feeds.yaml's ops_notify names destinations of rules.yaml."""
    import difflib

    issues = []
    for name in feeds.defaults.ops_notify:
        if name not in rules.destinations:
            close = difflib.get_close_matches(name, list(rules.destinations), n=1)
            hint = (
                f"did you mean '{close[0]}'?" if close else f"define it under notify: in {rules.path}, or use 'console'"
            )
            issues.append(
                ConfigIssue(
                    feeds.path,
                    feeds.ops_notify_line,
                    f"ops_notify in defaults names '{name}', which is not a destination of {rules.path}",
                    hint,
                )
            )
    return issues


def _load_both(
    feeds_path: str | os.PathLike[str], rules_path: str | os.PathLike[str], environ: Mapping[str, str] | None
) -> tuple[FeedsConfig | None, RulesConfig | None, list[ConfigIssue]]:
    """Both files and every issue of both (one file's errors never hide the other's)."""
    issues: list[ConfigIssue] = []
    feeds = rules = None
    try:
        feeds = load_feeds(feeds_path)
    except ConfigError as e:
        issues.extend(e.issues)
    try:
        rules = load_rules(rules_path, environ)
    except ConfigError as e:
        issues.extend(e.issues)
    if feeds is not None and rules is not None:
        issues.extend(cross_check(feeds, rules))
    return feeds, rules, issues


def check_all(
    feeds_path: str | os.PathLike[str], rules_path: str | os.PathLike[str], environ: Mapping[str, str] | None = None
) -> list[ConfigIssue]:
    """Every issue of both files (for `watcher check`)."""
    return _load_both(feeds_path, rules_path, environ)[2]


@dataclass(frozen=True)
class Config:
    """Both files, loaded."""

    feeds: FeedsConfig
    rules: RulesConfig
    extras: Mapping[str, Any] = field(default_factory=dict)


def load_config(
    feeds_path: str | os.PathLike[str], rules_path: str | os.PathLike[str], environ: Mapping[str, str] | None = None
) -> Config:
    feeds, rules, issues = _load_both(feeds_path, rules_path, environ)
    if issues or feeds is None or rules is None:
        raise ConfigError(issues)
    return Config(feeds=feeds, rules=rules)


def resolve_path(p: str | os.PathLike[str]) -> Path:
    return Path(p).expanduser()
