"""Money and power amounts in English and Japanese news text.

Rules say ``amount: {currency: USD, min: 1e9}`` or ``power: {min_watts: 1e8}``; this module turns "up to $5bn",
"US$30bn", "300億ドル", "1兆2000億円", "１ＧＷ" or "100万キロワット" into numbers those conditions can compare.
No library reads both languages (price-parser ignores scale words and Japanese units, quantulum3 misreads
"USD 10 billion" and knows no Japanese; see LIBRARY-NOTES.md §7), so this is a small hand-written extractor:

* every figure starts at a run of digits or kanji numerals (or at a number word before "billion"/"gigawatt"), so
  only those places are looked at: a currency just before (``$``, ``us$``, ``€``, ``usd``...), or a scale word and
  a currency (``dollars``, ``ドル``, ``円``...) or power unit (``gw``, ``ギガワット``...) after. All patterns are
  compiled at import;
* Python code then reads the number (ASCII digits with ``,`` and ``.``, kanji numerals, 万/億/兆 groups), applies
  the scale word (``bn``, ``million``...), and rejects what does not parse;
* ranges ("$5-10bn", "200〜300億ドル") give two amounts, the low end borrowing the high end's scale.

The input must already be normalised (NFKC + casefold, see :func:`normalise`): then "ＵＳ＄３０ｂｎ" is "us$30bn"
and the patterns only need the lower-case ASCII forms. Boundaries use ASCII-letter lookarounds, never ``\\b``:
Python counts kana and kanji as word characters, and "1gwの電力" must still match.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Context, Decimal
from types import MappingProxyType
from typing import Literal

from .normalize import normalize as _normalize

__all__ = [
    "DEFAULT_RATES",
    "Amount",
    "extract_amounts",
    "extract_amounts_raw",
    "format_amount",
    "normalise",
    "to_currency",
]


@dataclass(frozen=True)
class Amount:
    """One amount of money or power found in a text, with where it stands."""

    kind: Literal["money", "power"]  # what the amount measures
    value: Decimal  # money: in units of `currency`; power: in watts
    currency: str | None  # ISO 4217 code for money ("USD", "JPY"...); None for power
    upper_bound: bool  # the text says "up to", "as much as", "最大", "上限"... about it
    text: str  # the matched text, exactly as it stands in the input
    start: int  # offset of the first character in the input
    end: int  # offset just past the last character in the input


# --- tables ------------------------------------------------------------------------------------------------
# Every table is written in normalised (NFKC + casefolded) form. The regex alternations are built from the keys,
# longest first, so "us$" wins over "$" and "米ドル" over "ドル".

_PREFIX_CURRENCIES: Mapping[str, str] = {
    "$": "USD",
    "us$": "USD",
    "u.s.$": "USD",
    "usd": "USD",
    "€": "EUR",
    "eur": "EUR",
    "£": "GBP",
    "gbp": "GBP",
    "¥": "JPY",  # also the yuan sign, but in these feeds far more often yen
    "jpy": "JPY",
    "cn¥": "CNY",
    "cny": "CNY",
    "rmb": "CNY",
    "₩": "KRW",
    "krw": "KRW",
    "₹": "INR",
    "inr": "INR",
    "a$": "AUD",
    "au$": "AUD",
    "aud": "AUD",
    "c$": "CAD",
    "ca$": "CAD",
    "cad": "CAD",
    "hk$": "HKD",
    "hkd": "HKD",
    "s$": "SGD",
    "sg$": "SGD",
    "sgd": "SGD",
    "nz$": "NZD",
    "nzd": "NZD",
    "nt$": "TWD",
    "twd": "TWD",
    "chf": "CHF",
}

# Latin-script currency words after the number; they must not run on into a longer word ("yens", "usdc").
_SUFFIX_WORDS: Mapping[str, str] = {
    "dollar": "USD",
    "dollars": "USD",
    "us dollar": "USD",
    "us dollars": "USD",
    "u.s. dollars": "USD",
    "american dollars": "USD",
    "australian dollars": "AUD",
    "canadian dollars": "CAD",
    "hong kong dollars": "HKD",
    "singapore dollars": "SGD",
    "new zealand dollars": "NZD",
    "taiwan dollars": "TWD",
    "new taiwan dollars": "TWD",
    "yen": "JPY",
    "euro": "EUR",
    "euros": "EUR",
    "pound": "GBP",
    "pounds": "GBP",
    "pounds sterling": "GBP",
    "sterling": "GBP",
    "yuan": "CNY",
    "renminbi": "CNY",
    "won": "KRW",
    "rupee": "INR",
    "rupees": "INR",
    "swiss francs": "CHF",
    **{code.lower(): code for code in ("USD", "JPY", "EUR", "GBP", "CNY", "KRW", "INR", "AUD", "CAD", "CHF")},
    **{code.lower(): code for code in ("HKD", "SGD", "NZD", "TWD")},
    "rmb": "CNY",
}

# Japanese currency words and symbols after the number; no boundary needed ("300億ドルai投資" is fine).
_SUFFIX_SIGNS: Mapping[str, str] = {
    "ドル": "USD",
    "米ドル": "USD",
    "豪ドル": "AUD",
    "カナダドル": "CAD",
    "加ドル": "CAD",
    "香港ドル": "HKD",
    "シンガポールドル": "SGD",
    "台湾ドル": "TWD",
    "nzドル": "NZD",
    "円": "JPY",
    "ユーロ": "EUR",
    "ポンド": "GBP",
    "英ポンド": "GBP",
    "人民元": "CNY",
    "元": "CNY",
    "ウォン": "KRW",
    "ルピー": "INR",
    "スイスフラン": "CHF",
    "€": "EUR",  # "500 €", as written in continental Europe
}

# "500 pounds" is as often a weight and "3 won" a verb: accept them only with a scale ("£"/"gbp" are fine alone).
_SUFFIX_NEEDS_SCALE = frozenset({"pound", "pounds", "won"})
# A bare 元 follows numerals in 一元化 (unification) and 二元論 (dualism): accept it only after 万/億/兆.
_SUFFIX_NEEDS_BIG_UNIT = frozenset({"元"})

_SCALES: Mapping[str, int] = {
    "thousand": 3,
    "million": 6,
    "mln": 6,
    "mn": 6,
    "mm": 6,
    "mil": 6,
    "billion": 9,
    "bln": 9,
    "bn": 9,
    "bil": 9,
    "trillion": 12,
    "trn": 12,
    "tn": 12,
}
# One-letter scales only when written against the number ("$30b", "$500m"), never "$5 m".
_SHORT_SCALES: Mapping[str, int] = {"k": 3, "m": 6, "b": 9, "t": 12}

_POWER_WORDS: Mapping[str, int] = {
    "terawatt": 12,
    "terawatts": 12,
    "gigawatt": 9,
    "gigawatts": 9,
    "megawatt": 6,
    "megawatts": 6,
    "kilowatt": 3,
    "kilowatts": 3,
    "watt": 0,
    "watts": 0,
    "gw": 9,
    "mw": 6,  # casefolding makes milliwatts (mW) look the same; news about power plants means megawatts
    "kw": 3,
}
# Too short to stand apart from the number: only "5tw", "100w", never "5 tw" / "5 w".
_POWER_SHORT: Mapping[str, int] = {"tw": 12, "w": 0}
_POWER_SIGNS: Mapping[str, int] = {
    "テラワット": 12,
    "ギガワット": 9,
    "メガワット": 6,
    "キロワット": 3,
    "ワット": 0,
}

_KANJI_DIGITS: Mapping[str, int] = {
    "〇": 0,
    "零": 0,
    "一": 1,
    "二": 2,
    "三": 3,
    "四": 4,
    "五": 5,
    "六": 6,
    "七": 7,
    "八": 8,
    "九": 9,
}
_KANJI_SMALL: Mapping[str, int] = {"十": 10, "百": 100, "千": 1000}

# English number words, read only right before a scale word or a "-watt" word: "one gigawatt", "a billion dollars",
# "twenty-five million euros". Anywhere else "one" or "a" is no figure.
_WORD_UNITS: Mapping[str, int] = {
    "a": 1,
    "an": 1,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
}
_WORD_TENS: Mapping[str, int] = {
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "sixty": 60,
    "seventy": 70,
    "eighty": 80,
    "ninety": 90,
}
_KANJI_BIG: Mapping[str, int] = {"万": 4, "億": 8, "兆": 12}

_UPPER_WORDS = (
    "up to",
    "as much as",
    "as many as",
    "as high as",
    "as large as",
    "a maximum of",
    "maximum of",
    "max.",
    "max",
    "at most",
    "no more than",
    "not exceeding",
    "capped at",
)
_UPPER_SIGNS = ("最大", "最高", "上限")
# Words allowed between "up to" / 最大 and the amount ("up to an additional $5bn", "最大で約300億ドル").
_UPPER_FILLERS = (
    "で",
    "は",
    "約",
    "およそ",
    "ほぼ",
    "about",
    "around",
    "roughly",
    "approximately",
    "approx.",
    "an additional",
    "additional",
    "another",
    "a further",
    "further",
    "an estimated",
    "estimated",
    "nearly",
    "almost",
    "some",
    "a total of",
    "total of",
    ",",
)

DEFAULT_RATES: Mapping[str, Decimal] = MappingProxyType(
    {
        code: Decimal(rate)
        for code, rate in {
            "USD": "1",
            "JPY": "150",
            "EUR": "0.92",
            "GBP": "0.79",
            "CNY": "7.2",
            "KRW": "1400",
            "INR": "84",
            "AUD": "1.52",
            "CAD": "1.37",
            "CHF": "0.88",
            "HKD": "7.8",
            "SGD": "1.34",
            "NZD": "1.66",
            "TWD": "32",
        }.items()
    }
)
"""Units of each currency per 1 USD: rough, fixed rates, good enough for thresholds such as "over $1bn"."""


# --- patterns ----------------------------------------------------------------------------------------------


def _alt(words: Mapping[str, object] | tuple[str, ...]) -> str:
    """A regex alternation of literal words, longest first so a longer word wins over its prefix."""
    return "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))


_KD = "".join(_KANJI_DIGITS)
_KS = "".join(_KANJI_SMALL)
_KB = "".join(_KANJI_BIG)
# A number: ASCII digits with "," and ".", kanji numerals, and 万/億/兆 groups ("1兆2000億", "三百億"). The regex
# is loose on purpose (it must stay fast and simple); _parse_number() decides whether it is a valid number.
# Atomic (?>...): once read, a number is never given back a digit at a time to retry what follows, which would
# cost a full retry of every unit and currency per digit.
_NUM = f"(?>[0-9{_KD}{_KS}](?:[0-9,.{_KD}{_KS}{_KB}]*[0-9{_KD}{_KS}{_KB}])?)"
_DIGIT_WORDS = tuple(w for w, v in _WORD_UNITS.items() if 1 <= v <= 9 and w not in ("a", "an"))
_LONG_UNITS = ("thousand", "million", "billion", "trillion", *(w for w in _POWER_WORDS if len(w) > 2))
_WORDNUM = (
    rf"(?:(?:{_alt(_WORD_TENS)})(?:-(?:{_alt(_DIGIT_WORDS)}))?|{_alt(_WORD_UNITS)})"
    rf"(?=\s(?:{_alt(_LONG_UNITS)})(?![a-z]))"
)
# "+" for "$5+ million" (a floor, read as the figure); "-" for "$43-billion bid".
_SCALE = rf"(?:\+?[\s-]?(?:{_alt(_SCALES)})|\+?(?:{_alt(_SHORT_SCALES)}))(?![a-z])"
_SEP = r"(?:\s?[-–—~〜]\s?|\sto\s|\s?から\s?)"
_PREFIX = rf"(?<![a-z0-9])(?:{_alt(_PREFIX_CURRENCIES)})"
_SUFFIX = rf"\s?(?:(?:{_alt(_SUFFIX_WORDS)})(?![a-z])|{_alt(_SUFFIX_SIGNS)})"
_POWER = (
    rf"(?:\+?[\s-]?(?:{_alt(_POWER_WORDS)})(?![a-z0-9])(?![-\s]?hours?(?![a-z]))"
    rf"|(?:{_alt(_POWER_SHORT)})(?![a-z0-9])"
    rf"|\s?(?:{_alt(_POWER_SIGNS)})(?!時|アワー))"
)

# Where a figure may start: a run of ASCII digits or of kanji numerals ("一300億円" gives "一" and "300", so a stray
# 一 before a figure cannot spoil it). Scanning only from these anchors is what keeps extraction fast: most of a
# text is never looked at by the bigger patterns below.
# (Written with one leading character class, which lets the regex engine skip ahead fast to the next candidate.)
_ANCHOR = re.compile(f"[0-9{_KD}{_KS}](?:(?<=[0-9])[0-9]*|[{_KD}{_KS}]*)")
# Number words are found from the scale or watt word after them: "one gigawatt", "a billion dollars".
_WORD_HINT = re.compile("thousand|million|billion|trillion|watt")
_WORD_BEFORE = re.compile(
    rf"(?<![a-z0-9])(?:(?:{_alt(_WORD_TENS)})(?:-(?:{_alt(_DIGIT_WORDS)}))?|{_alt(_WORD_UNITS)})"
    rf"\s(?:tera|giga|mega|kilo)?\Z"
)
# A currency just before a figure: "$", "us$ ", "usd ", "€".
_PREFIX_BEFORE = re.compile(rf"{_PREFIX}\s?\Z")
_PREFIX_WINDOW = max(map(len, _PREFIX_CURRENCIES)) + 1
_PREFIX_LAST = frozenset(token[-1] for token in _PREFIX_CURRENCIES)  # a cheap test before the regex
# The figure after such a currency: "30 billion", "5bn", "2,500,000".
_PREFIXED = re.compile(rf"(?P<n>{_NUM})(?P<s>{_SCALE})?")
# A figure followed by a currency or power unit, maybe after a low end: "10-20 billion dollars", "1gw", "300億ドル".
# Not inside a word or number, nor after 数/何/幾: "数百億円" is "several hundred 億 yen", no figure.
_SUFFIXED = re.compile(
    rf"(?<![a-z0-9.数何幾])(?:(?P<lo>{_NUM})(?P<los>{_SCALE})?{_SEP})?"
    rf"(?P<n>{_NUM}|{_WORDNUM})(?P<s>{_SCALE})?(?:(?P<cur>{_SUFFIX})|(?P<pu>{_POWER}))"
)
# The high end of a range after a currency-first amount: "$5-10bn", "$5bn to $10bn".
_RANGE_TAIL = re.compile(rf"(?P<sep>{_SEP})(?P<hi>(?P<pre>{_PREFIX})?\s?(?P<n>{_NUM})(?P<s>{_SCALE})?)")
_KANJI_MULTIPLIER = re.compile(f"[{_KS}{_KB}]")
_ASCII_NUMBER = re.compile(r"(?:[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.[0-9]+)?")
_UPPER_BEFORE = re.compile(
    rf"(?:(?<![a-z])(?:{_alt(_UPPER_WORDS)})|{_alt(_UPPER_SIGNS)})(?:\s?(?:{_alt(_UPPER_FILLERS)}))*\s?\Z"
)
_UPPER_AFTER = re.compile(r"\s?[をが]?上限")
_UPPER_WINDOW = 48  # characters looked at before an amount for "up to"

_MAX_NUMBER_CHARS = 40  # longer "numbers" are serial numbers or junk, and would slow Decimal down
_CTX = Context(prec=60)  # exact for every number short enough to be read


# --- reading numbers ---------------------------------------------------------------------------------------


def _parse_small(s: str) -> Decimal | None:
    """A number below 万: "2,500", "1.5", "三百", "2千", "二〇二五"; None when it is not one."""
    if _ASCII_NUMBER.fullmatch(s):
        return Decimal(s.replace(",", ""))
    if "," in s or "." in s:
        return None
    total = 0
    last_mult = 10_000
    digits = ""
    kanji_digits = False  # "2千" and "二千" are numbers, "一300" (統一 before 300) is not
    for ch in s:
        if ch.isascii():
            if kanji_digits:
                return None
            digits += ch
        elif ch in _KANJI_DIGITS:
            if digits and not kanji_digits:
                return None
            kanji_digits = True
            digits += str(_KANJI_DIGITS[ch])
        else:
            kanji_digits = False
            mult = _KANJI_SMALL[ch]
            if mult >= last_mult:  # 十百, 百百: not a number
                return None
            total += (int(digits) if digits else 1) * mult
            last_mult = mult
            digits = ""
    return Decimal(total + (int(digits) if digits else 0))


def _parse_number(s: str) -> tuple[Decimal, int | None] | None:
    """A matched number and the exponent of its largest 万/億/兆 unit (None if it has none).

    "1兆2000億" -> (1.2e12, 12). Kanji-only numbers need a 十/百/千/万/億/兆 to count: a bare 一 or 二 is far more
    often a word ("関東一円" is "all over Kanto", not 1 yen), and 二〇二五 is a year.
    """
    if len(s) > _MAX_NUMBER_CHARS:
        return None
    if s[0].isascii() and s[0].isalpha():  # a number word: the regex let through only known ones
        tens, _, unit = s.partition("-")
        if unit:
            return Decimal(_WORD_TENS[tens] + _WORD_UNITS[unit]), None
        return Decimal(_WORD_TENS.get(s) or _WORD_UNITS[s]), None
    if _ASCII_NUMBER.fullmatch(s):  # the common case, read at once
        return Decimal(s.replace(",", "")), None
    if s[0] in _KANJI_DIGITS and _KANJI_MULTIPLIER.search(s) is None:
        return None
    total = Decimal(0)
    top: int | None = None
    last_exp = 16
    start = 0
    for i, ch in enumerate(s):
        exp = _KANJI_BIG.get(ch)
        if exp is None:
            continue
        part = _parse_small(s[start:i]) if i > start else None
        if part is None or exp >= last_exp:  # 億 with nothing before it, or 万 before 億
            return None
        total = _CTX.add(total, part.scaleb(exp, _CTX))
        top = exp if top is None else top
        last_exp = exp
        start = i + 1
    if start < len(s):
        part = _parse_small(s[start:])
        if part is None:
            return None
        total = _CTX.add(total, part)
    return total, top


def _scale_exp(token: str | None) -> int:
    """The power of ten of a scale word as matched (" billion", "bn", "m"), 0 when there is none."""
    if token is None:
        return 0
    word = token.lstrip("+- ").strip()
    return _SCALES.get(word, _SHORT_SCALES.get(word, 0))


def _canonical(value: Decimal) -> Decimal:
    """Integral values as plain integers (Decimal('30000000000'), not '3E+10'), so they store and print well."""
    if value == value.to_integral_value():
        return Decimal(int(value))
    return value.normalize(_CTX)


def _upper_bound(text: str, start: int, end: int) -> bool:
    """True when "up to", "最大"... stands just before the amount, or "を上限" just after it."""
    if _UPPER_BEFORE.search(text, max(0, start - _UPPER_WINDOW), start):
        return True
    return _UPPER_AFTER.match(text, end) is not None


# --- extraction --------------------------------------------------------------------------------------------


def extract_amounts(text: str) -> list[Amount]:
    """Amounts in document order.

    `text` must already be NFKC-normalised and casefolded (the matcher does that once per entry); offsets are into
    `text` as given. A bare number is never an amount: it needs a currency or a power unit next to it.
    """
    anchors = [m.start() for m in _ANCHOR.finditer(text)]
    if _WORD_HINT.search(text) is not None:
        words = [w for w in map(_word_before, _WORD_HINT.finditer(text)) if w >= 0]
        if words:
            anchors = sorted(anchors + words)
    found: list[Amount] = []
    pos = 0  # amounts never overlap: nothing before `pos` may be read again
    for p in anchors:
        if p >= pos:
            pos = max(pos, _read_at(text, p, pos, found))
    return found


def _word_before(hint: re.Match[str]) -> int:
    """Where a number word ends right before a scale or watt word ("one giga|watt"), or -1."""
    text = hint.string
    w = _WORD_BEFORE.search(text, max(0, hint.start() - 24), hint.start())
    return -1 if w is None else w.start()


def _read_at(text: str, p: int, floor: int, found: list[Amount]) -> int:
    """Read the amount whose figure starts at `p` into `found`; return where it ends, or -1 when there is none."""
    before = text[max(floor, p - 2) : p].rstrip()
    pre = None
    if before and before[-1] in _PREFIX_LAST:
        pre = _PREFIX_BEFORE.search(text, max(floor, p - _PREFIX_WINDOW), p)
    if pre is not None and (m := _PREFIXED.match(text, p)) is not None:
        end = _read_prefixed(text, pre, m, found)
        if end >= 0:
            return end
    if (m := _SUFFIXED.match(text, p)) is not None:
        return _read_suffixed(text, m, found)
    return -1


def _amount(
    text: str,
    kind: Literal["money", "power"],
    value: Decimal,
    currency: str | None,
    span: tuple[int, int],
    upper: bool,
) -> Amount:
    """Build an Amount whose text is the span of `text`."""
    start, end = span
    return Amount(kind, _canonical(value), currency, upper, text[start:end], start, end)


def _read_prefixed(text: str, pre: re.Match[str], m: re.Match[str], found: list[Amount]) -> int:
    """A currency-first amount ("$30bn"), and the high end of a range after it ("$5-10bn"); returns its end or -1."""
    parsed = _parse_number(m["n"])
    if parsed is None or parsed[0] == 0:
        return -1
    currency = _PREFIX_CURRENCIES[pre[0].strip()]
    lo, lo_exp = parsed[0], _scale_exp(m["s"])
    start, end = pre.start(), m.end()

    tail = _RANGE_TAIL.match(text, end)
    hi_parsed = _parse_number(tail["n"]) if tail is not None else None
    if tail is not None and hi_parsed is not None and hi_parsed[0] != 0:
        # "$30bn - 2025 plan" is no range: with spaces around a dash the high end must carry its own currency.
        loose_dash = tail["sep"] != tail["sep"].strip() and tail["sep"].strip() in "-–—~〜"
        if not (loose_dash and tail["pre"] is None):
            hi_exp = _scale_exp(tail["s"])
            hi = hi_parsed[0].scaleb(hi_exp, _CTX)
            if m["s"] is None and lo.scaleb(hi_exp, _CTX) <= hi:
                lo_exp = hi_exp  # "$5-10bn": the low end shares the high end's scale
            if lo.scaleb(lo_exp, _CTX) <= hi:
                upper = _upper_bound(text, start, tail.end())
                found.append(_amount(text, "money", lo.scaleb(lo_exp, _CTX), currency, (start, end), upper))
                found.append(_amount(text, "money", hi, currency, (tail.start("hi"), tail.end()), upper))
                return tail.end()
    upper = _upper_bound(text, start, end)
    found.append(_amount(text, "money", lo.scaleb(lo_exp, _CTX), currency, (start, end), upper))
    return end


def _read_suffixed(text: str, m: re.Match[str], found: list[Amount]) -> int:
    """A figure followed by a currency or power unit, maybe after a low end; returns its end or -1."""
    parsed = _parse_number(m["n"])
    if parsed is None or parsed[0] == 0:
        return -1
    number, big = parsed
    scale = _scale_exp(m["s"])
    kind: Literal["money", "power"]
    if m["cur"] is not None:
        word = m["cur"].strip()
        if word in _SUFFIX_NEEDS_SCALE and m["s"] is None and big is None:
            return -1
        if word in _SUFFIX_NEEDS_BIG_UNIT and big is None:
            return -1
        kind, currency, unit_exp = "money", _SUFFIX_WORDS.get(word) or _SUFFIX_SIGNS[word], 0
    else:
        unit = m["pu"].lstrip("+- ").strip()
        kind, currency = "power", None
        unit_exp = _POWER_WORDS.get(unit, _POWER_SHORT.get(unit, _POWER_SIGNS.get(unit, 0)))
    hi = number.scaleb(scale + unit_exp, _CTX)
    upper = _upper_bound(text, m.start(), m.end())

    if m["lo"] is not None and (lo_parsed := _parse_number(m["lo"])) is not None and lo_parsed[0] != 0:
        lo_number, lo_big = lo_parsed
        lo_exp = _scale_exp(m["los"]) + unit_exp
        if m["los"] is None and lo_big is None:
            # "10-20 billion dollars", "200〜300億ドル": the low end shares the high end's scale, when it fits
            shared = (big or 0) + scale + unit_exp
            if lo_number.scaleb(shared, _CTX) <= hi:
                lo_exp = shared
        lo = lo_number.scaleb(lo_exp, _CTX)
        if lo <= hi:  # otherwise "2025-30gw" and the like: a year, not the low end of a range
            lo_span = (m.start("lo"), m.end("los") if m["los"] is not None else m.end("lo"))
            found.append(_amount(text, kind, lo, currency, lo_span, upper))
    found.append(_amount(text, kind, hi, currency, (m.start("n"), m.end()), upper))
    return m.end()


def normalise(text: str) -> str:
    """The matcher's normalisation (NFKC, casefold, runs of white space as one space), for callers and tests.

    It is :func:`watcher.rules.normalize.normalize` itself, so offsets from :func:`extract_amounts` on its output
    agree with the spans the matcher reports for terms in the same entry.
    """
    return _normalize(text)


def extract_amounts_raw(text: str) -> list[Amount]:
    """Normalise `text`, then extract; offsets and `text` of each amount refer to the *normalised* string."""
    return extract_amounts(normalise(text))


# --- using amounts -----------------------------------------------------------------------------------------


def to_currency(amount: Amount, currency: str, rates: Mapping[str, Decimal] = DEFAULT_RATES) -> Decimal | None:
    """Convert a money amount; None when a rate is missing or amount is power.

    `rates` gives units of each currency per 1 USD (like :data:`DEFAULT_RATES`). The result is not rounded.
    """
    if amount.kind != "money" or amount.currency is None:
        return None
    target = currency.upper()
    if amount.currency == target:
        return amount.value
    src, dst = rates.get(amount.currency), rates.get(target)
    if src is None or dst is None or src == 0:
        return None
    return amount.value * dst / src


_POWER_DISPLAY = ((12, "TW"), (9, "GW"), (6, "MW"), (3, "kW"))


def _group(value: Decimal) -> str:
    """Digits grouped by thousands, no exponent, no trailing zeros: 3E+10 -> "30,000,000,000", 2.50 -> "2.5"."""
    return format(value.normalize(_CTX), ",f")


def format_amount(amount: Amount) -> str:
    """A short, exact form for alerts: "USD 30,000,000,000 (up to)", "1,000,000,000 W (1 GW)"."""
    notes: list[str] = []
    if amount.kind == "money":
        head = f"{amount.currency} {_group(amount.value)}"
    else:
        head = f"{_group(amount.value)} W"
        for exp, unit in _POWER_DISPLAY:
            if amount.value >= Decimal(1).scaleb(exp):
                scaled = amount.value.scaleb(-exp).quantize(Decimal("0.001"))
                notes.append(f"{_group(scaled)} {unit}")
                break
    if amount.upper_bound:
        notes.append("up to")
    return f"{head} ({', '.join(notes)})" if notes else head
