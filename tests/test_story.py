"""Story keys (what makes two entries "the same story" for a rule's cooldown) and the cooldown in the store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watcher.models import Entry, Hit
from watcher.store import PollWrite, Store
from watcher.story import story_key

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Claude now available in Microsoft Foundry", "Claude now available in Microsoft Foundry - Reuters"),
        ("Claude now available in Microsoft Foundry", "Claude Now Available in Microsoft Foundry | The Verge"),
        (
            "Microsoft, NVIDIA, and Anthropic announce strategic partnerships",
            "Microsoft NVIDIA and Anthropic announce strategic partnerships – Bloomberg.com",
        ),
        ("ＮＶＩＤＩＡ　クラウド契約", "NVIDIA クラウド契約 - 日本経済新聞"),
        ("Anthropic、Azureの演算能力を購入へ", "Anthropic Azureの演算能力を購入へ"),
    ],
)
def test_same_story(a: str, b: str) -> None:
    assert story_key(a, "https://a.example/1") == story_key(b, "https://news.google.com/rss/articles/xyz")


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Claude now available in Microsoft Foundry", "Claude now available in GitHub Copilot"),
        ("Anthropic commits $30 billion", "Anthropic commits $50 billion"),
        ("Oracle - OpenAI: the $300bn question, and what it means for every cloud provider", "Oracle"),
    ],
)
def test_different_stories(a: str, b: str) -> None:
    assert story_key(a) != story_key(b)


def test_untitled_entries_fall_back_to_the_link() -> None:
    assert story_key("", "https://www.example.com/news/1/?utm=x#top") == "l:example.com/news/1"
    assert story_key("", "http://example.com/news/1") == "l:example.com/news/1"
    assert story_key("", "") == ""
    assert story_key(" - ", "") == ""


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=400), st.sampled_from(["Reuters", "Nikkei Asia", "日本経済新聞", "The Verge"]))
def test_outlet_suffix_never_changes_the_key(title: str, outlet: str) -> None:
    key = story_key(title)
    if key.startswith("t:") and story_key(title + " - x") != key:  # a title that itself ends in a suffix is excepted
        assert story_key(f"{title} - {outlet}") == key
        assert len(key) <= 302


# --- cooldown in the store: no second alert for the same rule and story within the period ---------------------


def hit(rule: str, cooldown: float | None) -> Hit:
    return Hit(rule, "v1", ("integration-roadmap",), "notable", ("console",), ("claude",), cooldown=cooldown)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store.open(str(tmp_path / "w.db"))
    yield s
    s.close()


def poll(
    store: Store,
    feed: str,
    entries: list[Entry],
    rules: dict[str, float | None],
    now: datetime,
    cutoff: datetime | None = None,
) -> int:
    state = store.sync_feeds([(feed, f"https://{feed}/feed")], now)[feed]
    counts = store.record_poll(
        PollWrite(
            feed_id=state.feed_id,
            now=now,
            url=f"https://{feed}/feed",
            http_status=200,
            etag=None,
            last_modified=None,
            title=feed,
            entries=entries,
            hits={e.key: [hit(r, c) for r, c in rules.items()] for e in entries},
            alert_cutoff=cutoff,
        )
    )
    return counts.alerts


def story(key: str, title: str = "Claude now available in Microsoft Foundry", at: datetime = NOW) -> Entry:
    return Entry(key=key, title=title, link=f"https://x/{key}", published=at)


def test_cooldown_suppresses_the_second_alert_of_a_story(store: Store) -> None:
    rules = {"cooled": 86400.0, "plain": None}
    assert poll(store, "a", [story("1")], rules, NOW) == 2
    # the same story from another feed an hour later: the cooled rule stays quiet, the other alerts
    assert (
        poll(
            store,
            "b",
            [story("2", "Claude now available in Microsoft Foundry - Reuters")],
            rules,
            NOW + timedelta(hours=1),
        )
        == 1
    )
    # twice in one poll: one alert
    assert poll(store, "c", [story("3", at=NOW), story("4", at=NOW)], {"other": 3600.0}, NOW) == 1
    # a different story alerts at once
    assert poll(store, "a", [story("5", "Claude arrives in GitHub Copilot")], rules, NOW + timedelta(hours=2)) == 2
    # once the period has passed since the alert, the story alerts again
    assert poll(store, "d", [story("6")], rules, NOW + timedelta(days=1, hours=1)) == 2
    hits = store.recent_hits(rule="cooled", limit=10)
    assert len(hits) == 4  # every hit is kept, alerted or not
    assert {h["story"] for h in hits} == {
        "t:claude now available in microsoft foundry",
        "t:claude arrives in github copilot",
    }
    assert all(isinstance(h["entry_id"], int) for h in hits)


def test_a_backlog_hit_does_not_start_a_cooldown(store: Store) -> None:
    backlog = [story("1", at=NOW - timedelta(days=5))]
    assert poll(store, "old", backlog, {"cooled": 86400.0}, NOW, cutoff=NOW - timedelta(days=2)) == 0
    assert poll(store, "b", [story("2")], {"cooled": 86400.0}, NOW + timedelta(minutes=5)) == 1
