"""Delivery policy, pure: a fixed clock decides instant / digest / quiet hours / rate limit; no sleeps."""

from __future__ import annotations

import random
from datetime import UTC, datetime, time, timedelta

import pytest

from watcher.notify.policy import (
    NO_QUIET_HOURS,
    DeliveryPolicy,
    DigestSchedule,
    PolicyOverride,
    QuietHours,
    Undecided,
    after_failure,
    decide,
    plan,
    release_time,
    retry_delay,
)

T = datetime(2026, 3, 10, 21, 30, tzinfo=UTC)  # a Tuesday, 21:30 UTC = 06:30 next day in Tokyo
QUIET = QuietHours(time(22, 0), time(7, 0), "UTC")


def test_quiet_hours_wrap_midnight() -> None:
    assert not QUIET.contains(T)
    assert QUIET.contains(T.replace(hour=22))
    assert QUIET.contains(T.replace(hour=3))
    assert not QUIET.contains(T.replace(hour=7))
    assert QUIET.ends_after(T.replace(hour=23)) == datetime(2026, 3, 11, 7, 0, tzinfo=UTC)
    assert QUIET.ends_after(T.replace(hour=3)) == datetime(2026, 3, 10, 7, 0, tzinfo=UTC)


def test_quiet_hours_in_a_time_zone() -> None:
    tokyo = QuietHours(time(22, 0), time(7, 0), "Asia/Tokyo")
    assert tokyo.contains(T)  # 06:30 in Tokyo
    assert tokyo.ends_after(T) == datetime(2026, 3, 10, 22, 0, tzinfo=UTC)  # 07:00 JST


def test_digest_schedules() -> None:
    assert DigestSchedule(every=3600).next_after(T) == datetime(2026, 3, 10, 22, 0, tzinfo=UTC)
    assert DigestSchedule(every=900).next_after(T) == datetime(2026, 3, 10, 21, 45, tzinfo=UTC)
    daily = DigestSchedule(every=None, daily_at=time(8, 0), timezone="Asia/Tokyo")
    assert daily.next_after(T) == datetime(2026, 3, 10, 23, 0, tzinfo=UTC)  # 08:00 JST on the 11th
    assert daily.next_after(datetime(2026, 3, 10, 23, 0, tzinfo=UTC)) == datetime(2026, 3, 11, 23, 0, tzinfo=UTC)
    # across a DST change: 08:00 in Paris is 07:00 UTC in winter and 06:00 UTC in summer
    paris = DigestSchedule(every=None, daily_at=time(8, 0), timezone="Europe/Paris")
    assert paris.next_after(datetime(2026, 3, 28, 12, 0, tzinfo=UTC)) == datetime(2026, 3, 29, 6, 0, tzinfo=UTC)
    assert paris.next_after(datetime(2026, 3, 27, 12, 0, tzinfo=UTC)) == datetime(2026, 3, 28, 7, 0, tzinfo=UTC)


def test_decide_instant_by_default() -> None:
    d = decide(DeliveryPolicy(), "notable", T, 0)
    assert d.route == "instant" and d.release_at == T and d.reason is None


def test_quiet_hours_hold_until_they_end_and_urgent_bypasses() -> None:
    p = DeliveryPolicy(quiet_hours=QUIET)
    night = T.replace(hour=23, minute=10)
    d = decide(p, "notable", night, 0)
    assert (d.route, d.reason, d.release_at) == ("digest", "quiet_hours", datetime(2026, 3, 11, 7, tzinfo=UTC))
    assert decide(p, "urgent", night, 0).route == "instant"
    strict = DeliveryPolicy(quiet_hours=QuietHours(time(22), time(7), "UTC", urgent_bypass=False))
    assert decide(strict, "urgent", night, 0).reason == "quiet_hours"


def test_digest_mode_and_a_release_inside_quiet_hours_moves_to_their_end() -> None:
    daily = DigestSchedule(every=None, daily_at=time(6, 0), timezone="UTC")
    d = decide(DeliveryPolicy(mode="digest", digest=daily), "urgent", T, 0)
    assert (d.route, d.reason, d.release_at) == ("digest", "digest", datetime(2026, 3, 11, 6, tzinfo=UTC))
    p = DeliveryPolicy(mode="digest", digest=daily, quiet_hours=QUIET)
    assert release_time(p, T) == datetime(2026, 3, 11, 7, tzinfo=UTC)


def test_rate_limit_rolls_the_excess_into_the_next_digest() -> None:
    p = DeliveryPolicy(rate_limit=3)
    assert decide(p, "notable", T, 2).route == "instant"
    d = decide(p, "notable", T, 3)
    assert (d.route, d.reason, d.release_at) == ("digest", "rate_limit", datetime(2026, 3, 10, 22, tzinfo=UTC))


def test_plan_counts_its_own_instant_alerts_per_destination() -> None:
    batch = [Undecided(i, "slack" if i % 2 else "mail", "r", "notable") for i in range(1, 11)]
    policies = {"slack": DeliveryPolicy(rate_limit=3), "mail": DeliveryPolicy()}
    out = plan(batch, policies, {}, T, {"slack": 1})
    slack = [out[i].route for i in range(1, 11, 2)]
    assert slack == ["instant", "instant", "digest", "digest", "digest"]  # 1 already this hour + 2 = 3
    assert all(out[i].route == "instant" for i in range(2, 11, 2))
    assert 99 not in plan([Undecided(99, "gone", "r", "info")], policies, {}, T, {})


def test_rule_override_beats_the_destination() -> None:
    p = DeliveryPolicy(quiet_hours=QUIET)
    night = T.replace(hour=23)
    out = plan(
        [Undecided(1, "d", "calm", "notable"), Undecided(2, "d", "loud", "notable"), Undecided(3, "d", "x", "info")],
        {"d": p},
        {"calm": PolicyOverride(mode="digest"), "loud": PolicyOverride(quiet_hours=NO_QUIET_HOURS)},
        night,
        {},
    )
    assert out[1].route == "digest" and out[2].route == "instant" and out[3].reason == "quiet_hours"


def test_retry_delay_is_exponential_capped_and_jittered() -> None:
    rng = random.Random(1)
    for attempts, base in ((1, 30), (2, 60), (5, 480), (30, 6 * 3600)):
        for _ in range(50):
            s = retry_delay(attempts, rng).total_seconds()
            assert base * 0.8 <= s <= base * 1.2
    assert len({retry_delay(3, rng) for _ in range(20)}) > 10  # jitter spreads retries


@pytest.mark.parametrize(
    ("attempts", "age", "dead"),
    [
        (0, timedelta(0), False),
        (2, timedelta(0), True),
        (0, timedelta(hours=2), True),
        (0, timedelta(minutes=59), False),
    ],
)
def test_dead_letter_after_attempts_or_age(attempts: int, age: timedelta, dead: bool) -> None:
    p = DeliveryPolicy(max_attempts=3, max_age=3600, fallback="backup")
    r = after_failure(p, attempts, T - age, T, random.Random(0))
    assert r.attempts == attempts + 1 and r.dead is dead
    assert r.fallback == ("backup" if dead else None)
    assert r.next_attempt_at > T
