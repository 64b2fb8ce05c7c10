"""What to send when: instant or digest, quiet hours, rate limits, retries and dead letters. Pure.

Nothing here reads a clock, a socket or the database: every function takes ``now`` (an aware datetime) and the
facts it needs, so the tests drive it with a fixed clock instead of sleeping.

An alert is decided once, when the deliverer first sees it:

    quiet hours (unless urgent may bypass them)  -> held until they end, then sent as a digest
    mode: digest                                 -> held until the next digest time
    rate limit reached (N instant alerts / hour) -> held until the next digest time
    otherwise                                    -> instant

A held alert is never dropped: it waits in the outbox (``next_attempt_at`` = its release time) and goes out with
the other held alerts of its destination in one digest message. A release time that falls inside quiet hours is
moved to their end.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Literal
from zoneinfo import ZoneInfo

Mode = Literal["instant", "digest"]
HoldReason = Literal["digest", "quiet_hours", "rate_limit"]

RETRY_BASE = 30.0  # seconds before the first retry
RETRY_CAP = 6 * 3600.0  # longest wait between two retries
RETRY_JITTER = 0.2  # each delay is spread by +-20% so alerts failing together do not retry in lockstep
MAX_ATTEMPTS = 20  # default: then the alert is dead-lettered (about three days of capped backoff)
MAX_AGE = 7 * 86400.0  # default: an alert still failing after a week is dead-lettered


def zone(name: str) -> tzinfo:
    return UTC if name.upper() == "UTC" else ZoneInfo(name)


@dataclass(frozen=True)
class DigestSchedule:
    """When a destination's digest goes out: every N seconds (aligned on the clock), or daily at a local time."""

    every: float | None = 3600.0  # seconds; slots are multiples of it since midnight UTC, 1970-01-01
    daily_at: time | None = None  # local time of the daily digest (then `every` is None)
    timezone: str = "UTC"  # IANA name for daily_at

    def next_after(self, now: datetime) -> datetime:
        """The first digest time strictly after `now`."""
        if self.daily_at is None:
            step = self.every or 3600.0
            ts = now.timestamp()
            return datetime.fromtimestamp((ts // step + 1) * step, UTC)
        tz = zone(self.timezone)
        local = now.astimezone(tz)
        day = local.date()
        for offset in range(3):  # today, tomorrow, or the day after when a DST gap swallows the time
            candidate = _at(day + timedelta(days=offset), self.daily_at, tz)
            if candidate > now:
                return candidate
        raise AssertionError("unreachable: a daily time always comes within three days")

    def describe(self) -> str:
        if self.daily_at is not None:
            return f"daily at {self.daily_at:%H:%M} {self.timezone}"
        return f"every {_seconds_text(self.every or 3600.0)}"


HOURLY = DigestSchedule()


@dataclass(frozen=True)
class QuietHours:
    """A daily window (local time, may wrap midnight) during which alerts are held, not sent."""

    start: time  # `from:` in YAML
    end: time  # `to:`
    timezone: str = "UTC"
    urgent_bypass: bool = True  # urgent alerts are sent at once even in quiet hours

    def contains(self, now: datetime) -> bool:
        t = now.astimezone(zone(self.timezone)).time().replace(tzinfo=None)
        if self.start < self.end:
            return self.start <= t < self.end
        return t >= self.start or t < self.end

    def ends_after(self, now: datetime) -> datetime:
        """The end of the quiet window `now` is in (or the next end, if `now` is outside)."""
        tz = zone(self.timezone)
        day = now.astimezone(tz).date()
        for offset in range(3):
            candidate = _at(day + timedelta(days=offset), self.end, tz)
            if candidate > now:
                return candidate
        raise AssertionError("unreachable")

    def describe(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M} {self.timezone}"


@dataclass(frozen=True)
class DeliveryPolicy:
    """How one destination (or one rule at one destination) gets its alerts."""

    mode: Mode = "instant"
    digest: DigestSchedule = HOURLY  # when held alerts go out (digest mode, rate-limit overflow)
    quiet_hours: QuietHours | None = None
    rate_limit: int | None = None  # at most this many instant alerts per hour; the excess waits for the digest
    fallback: str | None = None  # destination that receives the alerts dead-lettered here
    max_attempts: int = MAX_ATTEMPTS  # failed attempts before an alert is dead-lettered
    max_age: float = MAX_AGE  # seconds: an alert failing for longer is dead-lettered

    def describe(self) -> str:
        """A short, secret-free summary for `watcher check`: "digest daily at 08:00 Asia/Tokyo, quiet ..."."""
        parts = [f"digest {self.digest.describe()}" if self.mode == "digest" else "instant"]
        if self.quiet_hours is not None:
            parts.append(f"quiet {self.quiet_hours.describe()}")
        if self.rate_limit is not None:
            parts.append(f"max {self.rate_limit}/h")
        if self.fallback:
            parts.append(f"fallback {self.fallback}")
        return ", ".join(parts)

    def overridden(self, override: PolicyOverride | None) -> DeliveryPolicy:
        """This policy with a rule's own mode / digest / quiet_hours in place of the destination's."""
        if override is None:
            return self
        quiet = self.quiet_hours
        if override.quiet_hours is not None:
            quiet = None if override.quiet_hours is NO_QUIET_HOURS else override.quiet_hours
        return replace(
            self,
            mode=override.mode or self.mode,
            digest=override.digest or self.digest,
            quiet_hours=quiet,
        )


NO_QUIET_HOURS = QuietHours(time(0), time(0))
"""A rule's ``quiet_hours: none``: this rule ignores its destinations' quiet hours."""


@dataclass(frozen=True)
class PolicyOverride:
    """A rule's own delivery settings; None keeps the destination's."""

    mode: Mode | None = None
    digest: DigestSchedule | None = None
    quiet_hours: QuietHours | None = None  # NO_QUIET_HOURS switches the destination's off for this rule


@dataclass(frozen=True)
class Decision:
    """What to do with one new alert."""

    route: Mode  # instant: send now; digest: hold until `release_at`
    release_at: datetime  # when it may go out (now, for instant)
    reason: HoldReason | None = None  # why it is held


def release_time(policy: DeliveryPolicy, now: datetime) -> datetime:
    """The next digest time of `policy`, moved out of its quiet hours."""
    at = policy.digest.next_after(now)
    if policy.quiet_hours is not None and policy.quiet_hours.contains(at):
        at = policy.quiet_hours.ends_after(at)
    return at


def decide(policy: DeliveryPolicy, severity: str, now: datetime, instant_last_hour: int) -> Decision:
    """Route one alert. `instant_last_hour`: instant alerts this destination got in the past hour."""
    quiet = policy.quiet_hours
    if quiet is not None and quiet.contains(now) and not (severity == "urgent" and quiet.urgent_bypass):
        at = quiet.ends_after(now)
        if policy.mode == "digest":
            at = max(at, release_time(policy, now))
        return Decision("digest", at, "quiet_hours")
    if policy.mode == "digest":
        return Decision("digest", release_time(policy, now), "digest")
    if policy.rate_limit is not None and instant_last_hour >= policy.rate_limit:
        return Decision("digest", release_time(policy, now), "rate_limit")
    return Decision("instant", now, None)


@dataclass(frozen=True)
class Undecided:
    """The facts `plan` needs about one new alert."""

    id: int
    destination: str
    rule: str
    severity: str


def plan(
    alerts: list[Undecided],
    policies: Mapping[str, DeliveryPolicy],
    overrides: Mapping[str, PolicyOverride],
    now: datetime,
    instant_counts: Mapping[str, int],
) -> dict[int, Decision]:
    """Decide a batch in order, counting the instant alerts it assigns against each destination's rate limit.

    Alerts of a destination missing from `policies` are left out (the deliverer reports them as failures)."""
    counts = dict(instant_counts)
    out: dict[int, Decision] = {}
    for a in alerts:
        base = policies.get(a.destination)
        if base is None:
            continue
        d = decide(base.overridden(overrides.get(a.rule)), a.severity, now, counts.get(a.destination, 0))
        if d.route == "instant":
            counts[a.destination] = counts.get(a.destination, 0) + 1
        out[a.id] = d
    return out


def retry_delay(attempts: int, rng: random.Random) -> timedelta:
    """Wait before attempt `attempts + 1`: exponential from 30 s, capped at 6 h, with +-20% jitter."""
    base = min(RETRY_CAP, RETRY_BASE * (2 ** max(0, attempts - 1)))
    return timedelta(seconds=base * rng.uniform(1 - RETRY_JITTER, 1 + RETRY_JITTER))


def is_dead(policy: DeliveryPolicy, attempts: int, age_from: datetime, now: datetime) -> bool:
    """After this failure (`attempts` counted), is the alert dead-lettered?"""
    return attempts >= policy.max_attempts or (now - age_from).total_seconds() >= policy.max_age


@dataclass(frozen=True)
class RetryPlan:
    """The outcome of one failed attempt."""

    attempts: int
    next_attempt_at: datetime
    dead: bool
    fallback: str | None = field(default=None)  # destination to hand the alert to, when dead


def after_failure(
    policy: DeliveryPolicy, attempts_before: int, age_from: datetime, now: datetime, rng: random.Random
) -> RetryPlan:
    attempts = attempts_before + 1
    dead = is_dead(policy, attempts, age_from, now)
    return RetryPlan(attempts, now + retry_delay(attempts, rng), dead, policy.fallback if dead else None)


def _at(day: date, t: time, tz: tzinfo) -> datetime:
    """`t` on `day` in `tz`, as an aware UTC datetime (a time in a DST gap lands just after it)."""
    local = datetime.combine(day, t, tzinfo=tz)
    return local.astimezone(UTC)


def _seconds_text(s: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size and s % size == 0:
            return f"{int(s // size)}{unit}"
    return f"{int(s)}s"
