"""Tests for watcher.dates: the Japanese date forms feedparser misreads, and the published-date sanity check."""

from __future__ import annotations

import io
import time
from datetime import UTC, datetime, timedelta, timezone

import feedparser
import feedparser.datetimes
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watcher.dates import feedparser_handler, install, parse_date, resolve_published

JST = timezone(timedelta(hours=9))


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


RECOGNISED = [
    # Japanese, no zone: Japan time
    ("2025年6月10日", utc(2025, 6, 9, 15, 0)),
    ("2025年6月10日 12時30分", utc(2025, 6, 10, 3, 30)),
    ("2025年6月10日 12時", utc(2025, 6, 10, 3, 0)),
    ("2025年6月10日 12時30分45秒", utc(2025, 6, 10, 3, 30, 45)),
    ("2025年06月10日 12:30", utc(2025, 6, 10, 3, 30)),
    ("2025年6月10日12:30:05", utc(2025, 6, 10, 3, 30, 5)),
    ("2025 年 6 月 10 日", utc(2025, 6, 9, 15, 0)),
    ("2025年6月10日(火) 午後3時", utc(2025, 6, 10, 6, 0)),
    ("2025年6月10日（火）午前0時5分", utc(2025, 6, 9, 15, 5)),
    ("2025年6月10日 火曜日 9:00", utc(2025, 6, 10, 0, 0)),
    # full width (NFKC)
    ("２０２５年６月１０日　１２時３０分", utc(2025, 6, 10, 3, 30)),
    ("２０２５／０６／１０　１２：００", utc(2025, 6, 10, 3, 0)),
    # eras
    ("令和7年6月10日", utc(2025, 6, 9, 15, 0)),
    ("㋿7年6月10日 12:00", utc(2025, 6, 10, 3, 0)),
    ("令和元年5月1日", utc(2019, 4, 30, 15, 0)),
    ("平成元年1月8日", utc(1989, 1, 7, 15, 0)),
    ("平成31年4月30日", utc(2019, 4, 29, 15, 0)),
    # slash / dot, no zone: Japan time (documented choice)
    ("2025/06/10 12:00", utc(2025, 6, 10, 3, 0)),
    ("  2025/06/10\n\t 12:00  ", utc(2025, 6, 10, 3, 0)),
    ("2025/6/10", utc(2025, 6, 9, 15, 0)),
    ("2025/06/10(火) 12:00", utc(2025, 6, 10, 3, 0)),
    ("2025/06/10 (Tue) 12:00:30", utc(2025, 6, 10, 3, 0, 30)),
    ("2025.06.10 12:00", utc(2025, 6, 10, 3, 0)),
    # explicit zones
    ("2025-06-10 12:00 JST", utc(2025, 6, 10, 3, 0)),
    ("2025-06-10T12:00:00+09:00", utc(2025, 6, 10, 3, 0)),
    ("2025-06-10T12:00:00.123+0900", utc(2025, 6, 10, 3, 0)),
    ("2025/06/10 12:00 +0900", utc(2025, 6, 10, 3, 0)),
    ("2025/06/10 12:00 +09:00", utc(2025, 6, 10, 3, 0)),
    ("2025/06/10 12:00 +09", utc(2025, 6, 10, 3, 0)),
    ("2025/06/10 12:00 UTC+9", utc(2025, 6, 10, 3, 0)),
    ("2025/06/10 12:00 (JST)", utc(2025, 6, 10, 3, 0)),
    ("2025/06/10 12:00 KST", utc(2025, 6, 10, 3, 0)),
    ("2025/06/10 12:00 HKT", utc(2025, 6, 10, 4, 0)),
    ("2025/06/10 12:00 UTC", utc(2025, 6, 10, 12, 0)),
    ("2025/06/10 12:00 -05:00", utc(2025, 6, 10, 17, 0)),
    ("2025/06/10 (UTC)", utc(2025, 6, 10, 0, 0)),
    ("2025年6月10日 12:00 JST", utc(2025, 6, 10, 3, 0)),
    # RFC 822 with an Asian zone or an offset
    ("Tue, 10 Jun 2025 04:00:00 JST", utc(2025, 6, 9, 19, 0)),
    ("Tue, 10 Jun 2025 04:00:00 +0900", utc(2025, 6, 9, 19, 0)),
    ("Tuesday, 10 June 2025 04:00 JST", utc(2025, 6, 9, 19, 0)),
    ("10 Jun 25 04:00 KST", utc(2025, 6, 9, 19, 0)),
    ("Ｔｕｅ， １０ Ｊｕｎ ２０２５ ０４：００：００ ＪＳＴ", utc(2025, 6, 9, 19, 0)),
]

NOT_OURS = [
    "",
    "   ",
    "garbage",
    "2025",
    "2025-06-10",  # ISO without zone: feedparser's (it reads it as UTC)
    "2025-06-10 12:00",
    "2025-06-10T12:00:00",
    "Tue, 10 Jun 2025 04:00:00 GMT",  # feedparser gets these right
    "Tue, 10 Jun 2025 04:00:00 EST",
    "2025/06/10 12:00 CST",  # ambiguous zone name: not guessed
    "2025/06/10 12:00 +1500",
    "2025/02/30",
    "2025/06/10 25:00",
    "2025/06/10 12:00:61",
    "2025年13月1日",
    "2025年6月10日 午後12時",  # 12 with 午前/午後 is ambiguous
    "2025年6月10日 頃",
    "0001/01/01 00:00",  # before datetime.min once moved to UTC
    "2025/06/10 12:00 JST trailing junk",
    "2025/06/10 12:00" + " JST" * 50,
    "1" * 1000,
]


@pytest.mark.parametrize(("text", "expected"), RECOGNISED)
def test_parse_date_recognised(text: str, expected: datetime) -> None:
    result = parse_date(text)
    assert result == expected
    assert result is not None and result.tzinfo is UTC


@pytest.mark.parametrize("text", NOT_OURS)
def test_parse_date_not_ours(text: str) -> None:
    assert parse_date(text) is None


def test_parse_date_non_string() -> None:
    assert parse_date(None) is None  # type: ignore[arg-type]
    assert parse_date(b"2025/06/10") is None  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "text",
    ["Tue, 10 Jun 2025 04:00:00 +0900", "Mon, 31 Dec 2024 23:59:59 -0330", "1 Jan 2025 00:00 +0000"],
)
def test_numeric_rfc822_agrees_with_feedparser(text: str) -> None:
    # Where feedparser is already right, taking the date over must not change the answer.
    ours = feedparser_handler(text)
    theirs = feedparser.datetimes._parse_date_rfc822(text)
    assert ours is not None and theirs is not None
    assert tuple(ours)[:6] == tuple(theirs)[:6]


@pytest.mark.parametrize(("text", "expected"), RECOGNISED[:10])
def test_feedparser_handler_is_utc_struct_time(text: str, expected: datetime) -> None:
    result = feedparser_handler(text)
    assert isinstance(result, time.struct_time)
    assert len(result) == 9
    assert result == expected.utctimetuple()


def test_feedparser_handler_unknown_is_none() -> None:
    assert feedparser_handler("Tue, 10 Jun 2025 04:00:00 GMT") is None
    assert feedparser_handler("nonsense") is None


def test_install_is_idempotent() -> None:
    install()
    install()
    handlers = feedparser.datetimes._date_handlers
    assert handlers.count(feedparser_handler) == 1


def _rss(pub_date: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>t</title>'
        f"<item><title>i</title><guid>g</guid><pubDate>{pub_date}</pubDate></item>"
        "</channel></rss>"
    ).encode()


@pytest.mark.parametrize(
    ("pub_date", "expected"),
    [
        ("2025年6月10日", (2025, 6, 9, 15, 0, 0)),  # feedparser alone: 2025-<current month>-01
        ("2025/06/10 12:00", (2025, 6, 10, 3, 0, 0)),
        ("Tue, 10 Jun 2025 04:00:00 JST", (2025, 6, 9, 19, 0, 0)),  # feedparser alone: 04:00 UTC
        ("Tue, 10 Jun 2025 04:00:00 GMT", (2025, 6, 10, 4, 0, 0)),  # still feedparser's, unchanged
        ("2025-06-10T12:00:00Z", (2025, 6, 10, 12, 0, 0)),
    ],
)
def test_feedparser_parse_after_install(pub_date: str, expected: tuple[int, ...]) -> None:
    install()
    parsed = feedparser.parse(io.BytesIO(_rss(pub_date)))
    assert tuple(parsed.entries[0].published_parsed)[:6] == expected


@settings(database=None, deadline=None)
@given(
    st.datetimes(
        min_value=datetime(2000, 1, 1),
        max_value=datetime(2035, 12, 31, 23, 59, 59),
        timezones=st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m))),
    )
)
def test_japanese_format_round_trip(d: datetime) -> None:
    text = d.astimezone(JST).strftime("%Y年%m月%d日 %H時%M分")
    assert parse_date(text) == d.astimezone(UTC).replace(second=0, microsecond=0)


@settings(database=None, deadline=None)
@given(st.text(max_size=60) | st.from_regex(r"\A[0-9０-９年月日時分秒/:. 午前後JST+-]{0,30}\Z"))
def test_never_raises(text: str) -> None:
    result = feedparser_handler(text)
    assert result is None or len(result) == 9


# --- resolve_published ---------------------------------------------------------------------------------

NOW = utc(2025, 6, 10, 12, 0)


@pytest.mark.parametrize(
    ("candidate", "expected"),
    [
        (None, None),
        (utc(2025, 6, 10, 11, 0), utc(2025, 6, 10, 11, 0)),
        (utc(2025, 6, 10, 13, 0), utc(2025, 6, 10, 13, 0)),  # exactly at the skew limit: kept
        (utc(2025, 6, 10, 13, 0, 1), None),  # beyond it: future
        (utc(2030, 1, 1), None),
        (utc(1990, 1, 1), utc(1990, 1, 1)),
        (utc(1989, 12, 31, 23, 59, 59), None),
        (utc(1970, 1, 1), None),
        (datetime(2025, 6, 10, 21, 0, tzinfo=JST), utc(2025, 6, 10, 12, 0)),  # converted to UTC
        (datetime(2025, 6, 10, 11, 0), utc(2025, 6, 10, 11, 0)),  # naive: taken as UTC
        (datetime.min, None),
        (datetime.max.replace(tzinfo=JST), None),
    ],
)
def test_resolve_published(candidate: datetime | None, expected: datetime | None) -> None:
    result = resolve_published(candidate, NOW)
    assert result == expected
    if result is not None:
        assert result.tzinfo is UTC


def test_resolve_published_custom_skew() -> None:
    candidate = utc(2025, 6, 10, 12, 5)
    assert resolve_published(candidate, NOW, max_skew=timedelta(0)) is None
    assert resolve_published(candidate, NOW, max_skew=timedelta(minutes=5)) == candidate


def test_resolve_published_naive_now_is_an_error() -> None:
    with pytest.raises(ValueError):
        resolve_published(NOW, datetime(2025, 6, 10))
