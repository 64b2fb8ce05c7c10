"""Dates that feedparser 6.0.14 gets wrong, and the sanity check every published date goes through.

feedparser reads ``2025年6月10日`` and ``2025/06/10 12:00`` as 2025-11-01: its ISO-8601 handler keeps the
year and fills in the *current* month and day (open issue kurtmckee/feedparser#75). It reads
``... 04:00:00 JST`` as UTC (nine hours off) and drops the time of ``2025-06-10 12:00 JST``. Japanese
sources are a large share of what watcher follows, so :func:`install` registers :func:`feedparser_handler`,
which feedparser tries before its own handlers, and which answers only for the forms below; anything else
gets ``None`` so feedparser's handlers still run.

Recognised, after NFKC normalisation (full-width digits and punctuation, ``㋿`` -> ``令和``):

* Japanese: ``2025年6月10日``, ``2025年6月10日(火) 12時30分``, ``2025年06月10日 12:30:05``,
  ``令和7年6月10日``, ``平成元年1月8日``, ``午前``/``午後`` before the hour.
* Slash or dot: ``2025/06/10``, ``2025/6/10 12:00``, ``2025.06.10 12:00``.
* Dash (ISO-like) *only with a zone*: ``2025-06-10 12:00 JST``, ``2025-06-10T12:00+09:00``. Without a zone
  it is ISO 8601, which feedparser already reads (as UTC), so it is left alone.
* RFC 822 with an Asian zone name or a numeric offset: ``Tue, 10 Jun 2025 04:00:00 JST``, ``... +0900``.
  With GMT, UTC or the US zones it is left to feedparser, which handles those.

Zones: ``JST``, ``KST`` (+9), ``HKT``, ``SGT`` (+8), ``UTC``/``GMT``/``UT``/``Z``, ``+0900``, ``+09:00``,
``+09``, ``UTC+9``, optionally in parentheses. Ambiguous names (``CST``, ``IST``...) are not guessed.

**A Japanese or slash date without a zone is Japan time (UTC+9).** Those forms are used almost only by
Japanese (and some East Asian) sites, whose local time it is; reading them as UTC would put every such
entry nine hours in the future, where :func:`resolve_published` would discard it. A date without a time is
midnight Japan time (15:00 UTC the day before).
"""

from __future__ import annotations

import re
import threading
import time
import unicodedata
from datetime import UTC, datetime, timedelta, timezone

import feedparser

__all__ = ["feedparser_handler", "install", "parse_date", "resolve_published"]

_JST_OFFSET = timedelta(hours=9)  # Japan has had no DST since 1951

# Named zones we are sure of. Deliberately short: a wrong guess is worse than feedparser's own answer.
_NAMED_ZONES: dict[str, timedelta] = {
    "JST": timedelta(hours=9),
    "KST": timedelta(hours=9),
    "HKT": timedelta(hours=8),
    "SGT": timedelta(hours=8),
    "UTC": timedelta(0),
    "GMT": timedelta(0),
    "UT": timedelta(0),
    "Z": timedelta(0),
}
# Names that make an RFC 822 date ours; with GMT/UTC/EST... feedparser is already right.
_ASIAN_ZONES = frozenset({"JST", "KST", "HKT", "SGT"})

# Era name -> the Gregorian year before its first year (令和元年 = 2019).
_ERAS = {"令和": 2018, "平成": 1988, "昭和": 1925}

_MONTHS = {
    name: number
    for number, (abbr, full) in enumerate(
        [
            ("jan", "january"), ("feb", "february"), ("mar", "march"), ("apr", "april"), ("may", "may"),
            ("jun", "june"), ("jul", "july"), ("aug", "august"), ("sep", "september"),
            ("oct", "october"), ("nov", "november"), ("dec", "december"),
        ],
        start=1,
    )
    for name in (abbr, full)
}  # fmt: skip
_MONTHS["sept"] = 9

_ZONE = r"(?P<zone>(?:UTC|GMT)?[+-]\d{1,2}(?::?\d{2})?|[A-Z]{1,4})"
_ZONE_TAIL = r"\s*(?:\(?" + _ZONE + r"\)?)?$"

_JA_DATE = re.compile(
    r"(?:(?P<era>令和|平成|昭和)\s*(?P<era_year>元|\d{1,2})|(?P<year>\d{4}))\s*年"
    r"\s*(?P<month>\d{1,2})\s*月\s*(?P<day>\d{1,2})\s*日"
)
_SLASH_DATE = re.compile(r"(?P<year>\d{4})(?P<sep>[/.])(?P<month>\d{1,2})(?P=sep)(?P<day>\d{1,2})")
_DASH_DATE = re.compile(r"(?P<year>\d{4})-(?P<month>\d{1,2})-(?P<day>\d{1,2})")

# What may follow the date: a weekday, a time (colon or 時分秒 form, maybe 午前/午後), a zone.
_REST = re.compile(
    r"\s*(?:\((?:[月火水木金土日](?:曜日?)?|(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)[a-z]{0,6})\)|[月火水木金土日]曜日?)?"
    r"(?:[\sT]*(?P<ampm>午前|午後)?\s*"
    r"(?:(?P<hour>\d{1,2}):(?P<minute>\d{2})(?::(?P<second>\d{2})(?:\.\d{1,9})?)?"
    r"|(?P<k_hour>\d{1,2})時(?:\s*(?P<k_minute>\d{1,2})分(?:\s*(?P<k_second>\d{1,2})秒)?)?))?" + _ZONE_TAIL
)

_RFC822 = re.compile(
    r"(?:[A-Za-z]{3,9},?\s*)?(?P<day>\d{1,2})\s+(?P<month>[A-Za-z]{3,9})\.?\s+(?P<year>\d{2}|\d{4})"
    r"\s+(?P<hour>\d{1,2}):(?P<minute>\d{2})(?::(?P<second>\d{2}))?\s*" + _ZONE + r"\s*$"
)

_MAX_LEN = 100  # no real date is longer; bounds the regex work on junk


def _zone_offset(zone: str) -> timedelta | None:
    """The UTC offset a zone token stands for, or None when it is unknown or out of range."""
    if zone in _NAMED_ZONES:
        return _NAMED_ZONES[zone]
    match = re.fullmatch(r"(?:UTC|GMT)?([+-])(\d{1,2}):?(\d{2})?", zone)
    if match is None:
        return None
    sign, hours, minutes = match.group(1), int(match.group(2)), int(match.group(3) or 0)
    if hours > 14 or minutes > 59:
        return None
    offset = timedelta(hours=hours, minutes=minutes)
    return -offset if sign == "-" else offset


def _hour_24(hour: int, ampm: str | None) -> int | None:
    """Apply 午前/午後. Hour 12 with either is ambiguous in Japanese usage (noon or midnight), so refuse it."""
    if ampm is None:
        return hour
    if hour > 11:
        return None
    return hour + 12 if ampm == "午後" else hour


def _build(year: int, month: int, day: int, hour: int, minute: int, second: int, offset: timedelta) -> datetime | None:
    """An aware UTC datetime, or None when the fields do not form a real instant."""
    try:
        local = datetime(year, month, day, hour, minute, second, tzinfo=timezone(offset))
        return local.astimezone(UTC)
    except (ValueError, OverflowError):  # 2025/02/30, 25:00, year 1 at +09:00...
        return None


def _parse_numeric(text: str) -> datetime | None:
    """Japanese, slash/dot and zoned dash forms: a date, then an optional weekday, time and zone."""
    match = _JA_DATE.match(text)
    kind = "ja"
    if match is None:
        match, kind = _SLASH_DATE.match(text), "slash"
    if match is None:
        match, kind = _DASH_DATE.match(text), "dash"
    if match is None:
        return None
    rest = _REST.match(text, match.end())
    if rest is None:
        return None

    fields = match.groupdict()
    if fields.get("era"):
        era_year = 1 if fields["era_year"] == "元" else int(fields["era_year"])
        year = _ERAS[fields["era"]] + era_year
    else:
        year = int(fields["year"])

    zone = rest.group("zone")
    if zone is None:
        if kind == "dash":  # plain ISO 8601: feedparser reads it, and reads it as UTC; not ours to change
            return None
        offset: timedelta | None = _JST_OFFSET
    else:
        offset = _zone_offset(zone)
    if offset is None:
        return None

    hour_text = rest.group("hour") or rest.group("k_hour")
    hour = _hour_24(int(hour_text), rest.group("ampm")) if hour_text else 0
    if hour is None:
        return None
    minute = int(rest.group("minute") or rest.group("k_minute") or 0)
    second = int(rest.group("second") or rest.group("k_second") or 0)
    return _build(year, int(fields["month"]), int(fields["day"]), hour, minute, second, offset)


def _parse_rfc822(text: str) -> datetime | None:
    """RFC 822 dates whose zone feedparser misreads (JST is taken as UTC) or that we read equally well."""
    match = _RFC822.match(text)
    if match is None:
        return None
    zone = match.group("zone")
    if zone.isalpha() and zone not in _ASIAN_ZONES:
        return None  # GMT, EST, unknown names: feedparser's own handler decides
    offset = _zone_offset(zone)
    month = _MONTHS.get(match.group("month").lower())
    if offset is None or month is None:
        return None
    year = int(match.group("year"))
    if len(match.group("year")) == 2:  # RFC 2822 4.3: 00-49 -> 20xx, 50-99 -> 19xx
        year += 2000 if year < 50 else 1900
    return _build(
        year,
        month,
        int(match.group("day")),
        int(match.group("hour")),
        int(match.group("minute")),
        int(match.group("second") or 0),
        offset,
    )


def parse_date(text: str) -> datetime | None:
    """Parse a Japanese/East-Asian date form feedparser misreads, as an aware UTC datetime.

    Returns None for anything not recognised (see the module docstring for the forms), so that a caller
    can fall back to other parsers; never raises.
    """
    if not isinstance(text, str) or len(text) > 10 * _MAX_LEN:  # feedparser passes str; never raise
        return None
    normalised = " ".join(unicodedata.normalize("NFKC", text).split())
    if not normalised or len(normalised) > _MAX_LEN:
        return None
    if normalised[0].isdigit() or normalised.startswith(tuple(_ERAS)):
        result = _parse_numeric(normalised)
        if result is not None:
            return result
    return _parse_rfc822(normalised)


def feedparser_handler(text: str) -> time.struct_time | None:
    """:func:`parse_date` in the form ``feedparser.registerDateHandler`` wants: a UTC 9-tuple or None.

    feedparser 6.0.14 (``feedparser/datetimes/__init__.py``) tries registered handlers newest first,
    skips one that returns a falsy value or something that is not 9 long, and swallows only KeyError,
    OverflowError, ValueError and AttributeError; anything else would abort the whole parse, which is why
    :func:`parse_date` never raises.
    """
    result = parse_date(text)
    return None if result is None else result.utctimetuple()


_install_lock = threading.Lock()
_installed = False


def install() -> None:
    """Register :func:`feedparser_handler` with feedparser, once per process.

    feedparser keeps its handlers in a process-wide list and has no way to unregister, so a second
    registration would just run the same handler twice per date; the flag makes repeated calls harmless.
    """
    global _installed
    with _install_lock:
        if not _installed:
            feedparser.registerDateHandler(feedparser_handler)
            _installed = True


_EARLIEST = datetime(1990, 1, 1, tzinfo=UTC)


def resolve_published(
    candidate: datetime | None, first_seen: datetime, *, max_skew: timedelta = timedelta(hours=1)
) -> datetime | None:
    """The published date to store, or None when it cannot be trusted (the caller then uses first_seen).

    Feeds publish future dates (scheduled posts, wrong zones, typos) and epoch-like dates (a 0 timestamp,
    1970-01-01); both would mis-order alerts and defeat backfill windows. ``first_seen`` is the injected
    "now", which keeps this pure. A naive ``candidate`` is taken as UTC, as feedparser's struct_times are;
    a naive ``first_seen`` is a programming error.
    """
    if first_seen.tzinfo is None or first_seen.utcoffset() is None:
        raise ValueError("first_seen must be an aware datetime")
    if candidate is None:
        return None
    if candidate.tzinfo is None or candidate.utcoffset() is None:
        candidate = candidate.replace(tzinfo=UTC)
    try:
        candidate = candidate.astimezone(UTC)
    except OverflowError:  # datetime.min/max with an offset
        return None
    if candidate < _EARLIEST or candidate > first_seen + max_skew:
        return None
    return candidate
