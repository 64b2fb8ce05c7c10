"""The ``notify:`` block of rules.yaml and the delivery keys of a rule -> Destination and PolicyOverride values.

A destination is a list of apprise URLs, or a mapping with its URLs and its delivery policy::

    notify:
      slack: ["${SLACK_WEBHOOK_URL}"]                # list form: instant, no quiet hours, no limit
      email:
        urls: ["mailtos://${SMTP_USER}:${SMTP_PASSWORD}@smtp.example.com:587?to=me@example.com"]
        mode: digest                                 # instant (default) | digest
        digest: {daily_at: "08:00", timezone: Asia/Tokyo}   # or {every: 1h} (the default)
        quiet_hours: {from: "22:00", to: "07:00", timezone: Europe/Paris, urgent: send}
        rate_limit: 10/h                             # instant alerts per hour; the excess goes to the digest
        fallback: slack                              # gets the alerts dead-lettered here
        max_attempts: 20                             # failed attempts before dead-lettering
        max_age: 7d                                  # or this long after the alert was created

Every problem is recorded in the Source with its line; values are never echoed when they may hold a secret.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from datetime import time
from functools import cache
from typing import Any, cast
from zoneinfo import ZoneInfoNotFoundError, available_timezones

from ..yamlsrc import Source
from .destinations import Destination, Secret, scheme_label
from .policy import HOURLY, NO_QUIET_HOURS, DeliveryPolicy, DigestSchedule, Mode, PolicyOverride, QuietHours, zone

CONSOLE = "console"
DESTINATION_KEYS = ("urls", "mode", "digest", "quiet_hours", "rate_limit", "fallback", "max_attempts", "max_age")
RULE_DELIVERY_KEYS = ("mode", "digest", "quiet_hours")
DIGEST_KEYS = ("every", "daily_at", "timezone")
QUIET_KEYS = ("from", "to", "timezone", "urgent")
_RATE = re.compile(r"^\s*(\d+)\s*(?:/|per)\s*(?:1\s*)?(?:h|hr|hour)\s*$", re.IGNORECASE)
_HHMM = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


@cache
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


def _timezone(src: Source, node: Mapping[str, Any], what: str) -> str:
    name = src.string(node, "timezone", what, "UTC") or "UTC"
    try:
        zone(name)
    except (ZoneInfoNotFoundError, ValueError):
        close = difflib.get_close_matches(name, sorted(_zones()), n=1)
        hint = f"did you mean '{close[0]}'?" if close else "use an IANA name such as Europe/Paris or Asia/Tokyo"
        src.error(Source.line_of(node, "timezone"), f"unknown time zone '{name}' in {what}", hint)
        return "UTC"
    return name


def _clock(src: Source, node: Mapping[str, Any], key: str, what: str) -> time | None:
    value = node.get(key)
    line = Source.line_of(node, key)
    if value is None:
        src.error(Source.line_of(node), f"{what} needs '{key}'", 'write e.g. from: "22:00"')
        return None
    m = _HHMM.match(str(value)) if isinstance(value, str) else None
    if m is None:
        src.error(line, f"'{key}' in {what} must be a time of day as \"HH:MM\"", 'quote it: "07:30"')
        return None
    return time(int(m.group(1)), int(m.group(2)))


def parse_mode(src: Source, node: Mapping[str, Any], what: str) -> Mode | None:
    value = node.get("mode")
    if value is None:
        return None
    if value not in ("instant", "digest"):
        src.error(Source.line_of(node, "mode"), f"'mode' in {what} must be instant or digest")
        return None
    return cast(Mode, value)


def parse_digest(src: Source, node: Mapping[str, Any], what: str) -> DigestSchedule | None:
    block = src.mapping(node, "digest", what)
    if block is None:
        return None
    what = f"digest of {what}"
    src.check_keys(block, DIGEST_KEYS, what)
    has_every, has_daily = block.get("every") is not None, block.get("daily_at") is not None
    if has_every == has_daily:
        src.error(
            Source.line_of(node, "digest"),
            f"{what} needs exactly one of 'every' and 'daily_at'",
            'write {every: 1h} or {daily_at: "08:00", timezone: Asia/Tokyo}',
        )
        return None
    tz = _timezone(src, block, what)
    if has_every:
        every = src.duration(block, "every", what, 3600.0)
        if every < 60:
            src.error(Source.line_of(block, "every"), f"'every' in {what} must be at least 1m")
            return None
        return DigestSchedule(every=every, timezone=tz)
    at = _clock(src, block, "daily_at", what)
    return DigestSchedule(every=None, daily_at=at, timezone=tz) if at is not None else None


def parse_quiet_hours(src: Source, node: Mapping[str, Any], what: str, *, allow_none: bool) -> QuietHours | None:
    value = node.get("quiet_hours")
    if value is None:
        return None
    if allow_none and (value is False or (isinstance(value, str) and value.lower() in ("none", "off"))):
        return NO_QUIET_HOURS
    block = src.mapping(node, "quiet_hours", what)
    if block is None:
        return None
    what = f"quiet_hours of {what}"
    src.check_keys(block, QUIET_KEYS, what)
    start, end = _clock(src, block, "from", what), _clock(src, block, "to", what)
    tz = _timezone(src, block, what)
    urgent = src.string(block, "urgent", what, "send") or "send"
    if urgent not in ("send", "hold"):
        src.error(
            Source.line_of(block, "urgent"),
            f"'urgent' in {what} must be send or hold",
            "send: urgent alerts go out at once even in quiet hours; hold: they wait too",
        )
    if start is None or end is None:
        return None
    if start == end:
        src.error(Source.line_of(block, "from"), f"{what}: 'from' and 'to' are the same time", "give a window")
        return None
    return QuietHours(start=start, end=end, timezone=tz, urgent_bypass=urgent != "hold")


def parse_override(src: Source, node: Mapping[str, Any], what: str) -> PolicyOverride | None:
    """A rule's mode / digest / quiet_hours, or None when it has none of them."""
    if not any(node.get(k) is not None for k in RULE_DELIVERY_KEYS):
        return None
    return PolicyOverride(
        mode=parse_mode(src, node, what),
        digest=parse_digest(src, node, what),
        quiet_hours=parse_quiet_hours(src, node, what, allow_none=True),
    )


def _rate_limit(src: Source, node: Mapping[str, Any], what: str) -> int | None:
    value = node.get("rate_limit")
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    m = _RATE.match(value) if isinstance(value, str) else None
    if m is None or int(m.group(1)) < 1:
        src.error(
            Source.line_of(node, "rate_limit"),
            f"'rate_limit' in {what} must be a number of alerts per hour",
            "write e.g. rate_limit: 10/h",
        )
        return None
    return int(m.group(1))


def _policy(src: Source, node: Mapping[str, Any], what: str) -> DeliveryPolicy:
    base = DeliveryPolicy()
    max_age = src.duration(node, "max_age", what, base.max_age)
    if node.get("max_age") is not None and max_age < 60:
        src.error(Source.line_of(node, "max_age"), f"'max_age' in {what} must be at least 1m")
    return DeliveryPolicy(
        mode=parse_mode(src, node, what) or "instant",
        digest=parse_digest(src, node, what) or HOURLY,
        quiet_hours=parse_quiet_hours(src, node, what, allow_none=False),
        rate_limit=_rate_limit(src, node, what),
        fallback=src.string(node, "fallback", what),
        max_attempts=src.integer(node, "max_attempts", what, base.max_attempts, minimum=1),
        max_age=max_age,
    )


def _urls(src: Source, name: str, value: Any, line: int | None, env: Mapping[str, str]) -> list[Secret] | None:
    urls = [value] if isinstance(value, str) else value
    if not isinstance(urls, Sequence) or isinstance(urls, str) or not urls or not all(isinstance(u, str) for u in urls):
        src.error(
            line,
            f"destination '{name}' must be a list of apprise URLs (or a mapping with 'urls:')",
            "write e.g. slack: ['${SLACK_WEBHOOK_URL}']",
        )
        return None
    secrets: list[Secret] = []
    for i, raw in enumerate(urls):
        item_line = Source.line_of(urls, i) if hasattr(urls, "lc") else line
        expanded = src.expand_env(raw, item_line, env)
        if expanded is None:
            continue
        if "://" not in expanded:
            # never echo the value: it may be a token pasted without its scheme
            src.error(
                item_line,
                f"URL {i + 1} of destination '{name}' has no scheme",
                "apprise URLs look like slack://..., mailtos://..., json://...",
            )
            continue
        secrets.append(Secret(expanded, scheme_label(name, i, expanded)))
    return secrets


def parse_destinations(src: Source, block: Mapping[str, Any] | None, env: Mapping[str, str]) -> dict[str, Destination]:
    """The console, the ``notify:`` destinations, and ``default`` from WATCHER_NOTIFY when not defined."""
    destinations: dict[str, Destination] = {CONSOLE: Destination(CONSOLE)}
    for key, value in (block or {}).items():
        line = Source.line_of(block, key)
        name = str(key)
        if name == CONSOLE:
            src.error(line, "'console' is the built-in console destination", "choose another name")
            continue
        what = f"destination '{name}'"
        policy = DeliveryPolicy()
        if isinstance(value, Mapping):
            src.check_keys(value, DESTINATION_KEYS, what)
            if value.get("urls") is None:
                src.error(line, f"{what} has no 'urls'", "add urls: ['${SLACK_WEBHOOK_URL}']")
                continue
            secrets = _urls(src, name, value["urls"], Source.line_of(value, "urls"), env)
            policy = _policy(src, value, what)
        else:
            secrets = _urls(src, name, value, line, env)
        if secrets:
            destinations[name] = Destination(name, tuple(secrets), policy, line)
    watcher_notify = env.get("WATCHER_NOTIFY")
    if watcher_notify and "default" not in destinations:
        if "://" in watcher_notify:
            destinations["default"] = Destination(
                "default", (Secret(watcher_notify, scheme_label("default", 0, watcher_notify)),)
            )
        else:
            src.error(None, "WATCHER_NOTIFY is not an apprise URL (no scheme)", "e.g. WATCHER_NOTIFY=slack://...")
    for name, dest in destinations.items():
        fb = dest.policy.fallback
        if fb is None:
            continue
        value = (block or {}).get(name)
        fb_line = Source.line_of(value, "fallback") if isinstance(value, Mapping) else dest.line
        if fb == name:
            src.error(fb_line, f"destination '{name}' falls back to itself", "name another destination")
        elif fb not in destinations:
            close = difflib.get_close_matches(fb, list(destinations), n=1)
            hint = f"did you mean '{close[0]}'?" if close else "define it under notify:"
            src.error(fb_line, f"fallback '{fb}' of destination '{name}' is not a destination", hint)
    return destinations
