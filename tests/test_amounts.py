"""Money and power amounts in English and Japanese: a phrase table, property tests, conversion and display."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watcher.rules.amounts import (
    DEFAULT_RATES,
    Amount,
    extract_amounts,
    extract_amounts_raw,
    format_amount,
    normalise,
    to_currency,
)
from watcher.rules.normalize import normalize

D = Decimal
FAST = settings(max_examples=200, deadline=None)

# --- the phrase table --------------------------------------------------------------------------------------
# phrase as it could stand in a feed -> [(kind, value, currency, upper_bound), ...] in document order

CASES: list[tuple[str, list[tuple[str, Decimal, str | None, bool]]]] = [
    # English, currency first
    ("$30 billion", [("money", D("3e10"), "USD", False)]),
    ("$30b", [("money", D("3e10"), "USD", False)]),
    ("$30bn", [("money", D("3e10"), "USD", False)]),
    ("US$30bn", [("money", D("3e10"), "USD", False)]),
    ("us$ 30 billion", [("money", D("3e10"), "USD", False)]),
    ("up to $5bn", [("money", D("5e9"), "USD", True)]),
    ("USD 10 billion", [("money", D("1e10"), "USD", False)]),
    ("$1.5 trillion", [("money", D("1.5e12"), "USD", False)]),
    ("$500 million", [("money", D("5e8"), "USD", False)]),
    ("$500m", [("money", D("5e8"), "USD", False)]),
    ("$2,500,000", [("money", D("2500000"), "USD", False)]),
    ("€2bn", [("money", D("2e9"), "EUR", False)]),
    ("£3 billion", [("money", D("3e9"), "GBP", False)]),
    ("¥1 trillion", [("money", D("1e12"), "JPY", False)]),
    ("JPY 100 billion", [("money", D("1e11"), "JPY", False)]),
    ("EUR 2 billion", [("money", D("2e9"), "EUR", False)]),
    ("the $43-billion bid", [("money", D("4.3e10"), "USD", False)]),
    ("a new $5+ million partnership", [("money", D("5e6"), "USD", False)]),
    ("as much as $100 billion", [("money", D("1e11"), "USD", True)]),
    ("up to an additional $5 billion", [("money", D("5e9"), "USD", True)]),
    ("a$2.5bn", [("money", D("2.5e9"), "AUD", False)]),
    # English, currency after
    ("10 billion dollars", [("money", D("1e10"), "USD", False)]),
    ("30 billion usd", [("money", D("3e10"), "USD", False)]),
    ("a billion dollars", [("money", D("1e9"), "USD", False)]),
    ("twenty-five million euros", [("money", D("2.5e7"), "EUR", False)]),
    ("5 billion pounds", [("money", D("5e9"), "GBP", False)]),
    ("mistral ai raises 1.7b€", [("money", D("1.7e9"), "EUR", False)]),
    # ranges: the low end borrows the high end's scale
    ("$5-10bn", [("money", D("5e9"), "USD", False), ("money", D("1e10"), "USD", False)]),
    ("10-20 billion dollars", [("money", D("1e10"), "USD", False), ("money", D("2e10"), "USD", False)]),
    # Japanese
    ("300億ドル", [("money", D("3e10"), "USD", False)]),
    ("1兆円", [("money", D("1e12"), "JPY", False)]),
    ("1兆2000億円", [("money", D("1.2e12"), "JPY", False)]),
    ("5000万ドル", [("money", D("5e7"), "USD", False)]),
    ("約3兆円", [("money", D("3e12"), "JPY", False)]),
    ("最大300億ドル", [("money", D("3e10"), "USD", True)]),
    ("最大で約300億ドル", [("money", D("3e10"), "USD", True)]),
    ("300億ドルを上限に", [("money", D("3e10"), "USD", True)]),
    ("上限1000億円", [("money", D("1e11"), "JPY", True)]),
    ("100億米ドル", [("money", D("1e10"), "USD", False)]),
    ("3億ユーロ", [("money", D("3e8"), "EUR", False)]),
    ("二百億ドル", [("money", D("2e10"), "USD", False)]),
    ("一兆二千億円", [("money", D("1.2e12"), "JPY", False)]),
    ("2千万円", [("money", D("2e7"), "JPY", False)]),
    ("1.5兆円", [("money", D("1.5e12"), "JPY", False)]),
    ("300億ドル分", [("money", D("3e10"), "USD", False)]),
    ("100億人民元", [("money", D("1e10"), "CNY", False)]),
    ("200〜300億ドル", [("money", D("2e10"), "USD", False), ("money", D("3e10"), "USD", False)]),
    ("統一300億円", [("money", D("3e10"), "JPY", False)]),
    ("過去最大の1兆円", [("money", D("1e12"), "JPY", False)]),  # "record", not "up to"
    ("最大手の楽天が300億円", [("money", D("3e10"), "JPY", False)]),  # "the largest firm", not "up to"
    (
        "ソフトバンクが300億ドルを投資、1兆円規模",
        [("money", D("3e10"), "USD", False), ("money", D("1e12"), "JPY", False)],
    ),
    ("30億ドル（約4500億円）", [("money", D("3e9"), "USD", False), ("money", D("4.5e11"), "JPY", False)]),
    # full width, as some Japanese feeds write it
    ("ＮＶＩＤＩＡ　クラウド契約　１００億ドル", [("money", D("1e10"), "USD", False)]),
    ("ＵＳ＄３０ｂｎ", [("money", D("3e10"), "USD", False)]),
    ("１０００億円", [("money", D("1e11"), "JPY", False)]),
    ("最大１ＧＷ", [("power", D("1e9"), None, True)]),
    # power
    ("1 gigawatt", [("power", D("1e9"), None, False)]),
    ("1gw", [("power", D("1e9"), None, False)]),
    ("1 GW", [("power", D("1e9"), None, False)]),
    ("500 megawatts", [("power", D("5e8"), None, False)]),
    ("500MW", [("power", D("5e8"), None, False)]),
    ("１ＧＷ", [("power", D("1e9"), None, False)]),
    ("2.5 gigawatts", [("power", D("2.5e9"), None, False)]),
    ("1ギガワット", [("power", D("1e9"), None, False)]),
    ("500メガワット", [("power", D("5e8"), None, False)]),
    ("100万キロワット", [("power", D("1e9"), None, False)]),
    ("1000 kW", [("power", D("1e6"), None, False)]),
    ("5 megawatt", [("power", D("5e6"), None, False)]),
    ("a 500-megawatt plant", [("power", D("5e8"), None, False)]),
    ("1GWの電力", [("power", D("1e9"), None, False)]),
    ("up to 5 gigawatts of new compute", [("power", D("5e9"), None, True)]),
    ("and up to one gigawatt of capacity", [("power", D("1e9"), None, True)]),
    (
        "Anthropic committed to purchase $30 billion of Azure compute capacity",
        [("money", D("3e10"), "USD", False)],
    ),
]

NEGATIVES = [
    "",
    "ギガワット",
    "gigawatt",
    "2025",
    "in 2025, revenue rose",
    "5G network",
    "GPT-4",
    "$",
    "$ and 5",
    "1.5x faster",
    "50%",
    "RTX 5070",
    "MWC 2025",
    "2025 MWC",
    "the gwen 5",
    "v2.5gw",
    "2,000 employees",
    "12 months",
    "12m users",
    "5 billion people",
    "A100 80GB",
    "1 gigawatt-hour",
    "10GWh",
    "1ギガワット時",
    "500 pounds of flour",
    "won 3 games",
    "5 w",
    "数百億円",
    "十数億円",
    "数十億ドル",
    "関東一円",
    "一元化",
    "二元論",
    "二〇二五年",
    "100万人",
    "12月3日",
]


def _facts(amounts: list[Amount]) -> list[tuple[str, Decimal, str | None, bool]]:
    return [(a.kind, a.value, a.currency, a.upper_bound) for a in amounts]


@pytest.mark.parametrize(("phrase", "expected"), CASES, ids=[c[0] for c in CASES])
def test_phrase(phrase: str, expected: list[tuple[str, Decimal, str | None, bool]]) -> None:
    text = normalise(phrase)
    found = extract_amounts(text)
    assert _facts(found) == expected
    for a in found:
        assert text[a.start : a.end] == a.text


@pytest.mark.parametrize("phrase", NEGATIVES)
def test_not_an_amount(phrase: str) -> None:
    assert extract_amounts_raw(phrase) == []


def test_offsets_and_text_in_normalised_input() -> None:
    text = normalise("ソフトバンクが　３００億ドルを投資")
    (a,) = extract_amounts(text)
    assert (a.text, a.start, a.end) == ("300億ドル", 8, 14)
    assert text[a.start : a.end] == a.text


def test_range_spans() -> None:
    lo, hi = extract_amounts("$5-10bn")
    assert (lo.text, lo.start, lo.end) == ("$5", 0, 2)
    assert (hi.text, hi.start, hi.end) == ("10bn", 3, 7)


def test_values_are_plain_integers_when_whole() -> None:
    (a,) = extract_amounts("$1.5 trillion")
    assert str(a.value) == "1500000000000"


def test_normalise_is_the_matchers() -> None:
    raw = "ＮＶＩＤＩＡ　クラウド契約\n１００億ドル"
    assert normalise(raw) == normalize(raw) == "nvidia クラウド契約 100億ドル"


def test_amount_is_frozen() -> None:
    (a,) = extract_amounts("$5bn")
    with pytest.raises(AttributeError):
        a.value = D(1)  # type: ignore[misc]


# --- property tests ----------------------------------------------------------------------------------------
# Filler words hold no digit, numeral, currency, unit or "up to"; the amount is written in one of the supported
# forms and must come back as exactly one amount with the same value.

FILLER_WORDS = ["the", "deal", "company", "said", "on", "monday", "investment", "data", "centre", "of", "and"]
FILLER_WORDS += ["new", "ai", "cloud", "in", "japan", "openai", "の", "が", "を", "投資", "発表", "契約"]
FILLER_WORDS += ["データセンター", "規模", "計画", "、", "。", "(", ")", ":", "—"]
SEPARATORS = [" ", "、", " — ", "。", ": ", " ("]

filler = st.lists(st.sampled_from(FILLER_WORDS), max_size=8).map(" ".join)
separator = st.sampled_from(SEPARATORS)

SCALE_WORDS = {3: "thousand", 6: "million", 9: "billion", 12: "trillion"}
SCALE_ABBREVIATIONS = {3: ["k"], 6: ["m", "mn"], 9: ["b", "bn"], 12: ["t", "tn"]}
KANJI_DIGITS = "〇一二三四五六七八九"


def full_width(s: str) -> str:
    """ASCII letters, digits and signs as their full-width forms, spaces as ideographic spaces."""
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else "\u3000" if c == " " else c for c in s)


def kanji_below_10000(n: int) -> str:
    """1..9999 in kanji numerals: 2500 -> 二千五百, 15 -> 十五, 1000 -> 千."""
    out = ""
    for unit, mark in ((1000, "千"), (100, "百"), (10, "十")):
        q, n = divmod(n, unit)
        if q:
            out += ("" if q == 1 else KANJI_DIGITS[q]) + mark
    return out + (KANJI_DIGITS[n] if n else "")


def japanese_number(value: int, style: str) -> str:
    """A whole number below 10^16 in 兆/億/万 groups, each group in ASCII, ASCII with commas, or kanji."""
    parts = []
    for exp, mark in ((12, "兆"), (8, "億"), (4, "万"), (0, "")):
        group, value = divmod(value, 10**exp)
        if group:
            text = {"ascii": str(group), "commas": f"{group:,}", "kanji": kanji_below_10000(group)}[style]
            parts.append(text + mark)
    return "".join(parts)


mantissa = st.builds(
    lambda whole, frac: Decimal(whole) + Decimal(frac) / 100 if frac else Decimal(whole),
    st.integers(1, 999),
    st.sampled_from([0, 0, 0, 5, 25, 50, 75]),
)


def plain(d: Decimal) -> str:
    """A Decimal as a reader would write it: 30, 1.5, 2.25."""
    return format(d.normalize(), "f")


@st.composite
def english_money(draw: st.DrawFn) -> tuple[str, Decimal]:
    m = draw(mantissa)
    exp = draw(st.sampled_from(sorted(SCALE_WORDS)))
    word = SCALE_WORDS[exp]
    abbr = draw(st.sampled_from(SCALE_ABBREVIATIONS[exp]))
    x = plain(m)
    forms = [
        f"${x} {word}",
        f"${x}{abbr}",
        f"US${x}{abbr}",
        f"us$ {x} {word}",
        f"USD {x} {word}",
        f"{x} {word} dollars",
        f"{x} {word} USD",
    ]
    return draw(st.sampled_from(forms)), m.scaleb(exp)


@st.composite
def english_money_with_commas(draw: st.DrawFn) -> tuple[str, Decimal]:
    value = draw(st.integers(1, 10**13))
    return f"${value:,}", Decimal(value)


@st.composite
def japanese_money(draw: st.DrawFn) -> tuple[str, Decimal]:
    # a whole number of 万 at least, as Japanese news writes large sums: 300億, 1兆2000億, 5000万
    groups = draw(st.lists(st.integers(0, 9999), min_size=3, max_size=3).filter(any))
    value = groups[0] * 10**12 + groups[1] * 10**8 + groups[2] * 10**4
    style = draw(st.sampled_from(["ascii", "commas", "kanji"]))
    return japanese_number(value, style) + "ドル", Decimal(value)


money_phrase = st.one_of(english_money(), english_money_with_commas(), japanese_money())


@FAST
@given(money_phrase, filler, separator, filler, separator, st.booleans())
def test_money_in_any_form_reads_back(
    phrase_value: tuple[str, Decimal], before: str, sep1: str, after: str, sep2: str, wide: bool
) -> None:
    phrase, value = phrase_value
    if wide:
        phrase = full_width(phrase)
    text = normalise(before + sep1 + phrase + sep2 + after)
    found = extract_amounts(text)
    assert _facts(found) == [("money", value, "USD", False)], text
    (a,) = found
    assert text[a.start : a.end] == a.text == normalise(phrase)


@st.composite
def power_phrase(draw: st.DrawFn) -> tuple[str, Decimal]:
    m = draw(mantissa)
    x = plain(m)
    exp, unit = draw(
        st.sampled_from(
            [
                (9, f"{x} GW"),
                (9, f"{x}GW"),
                (9, f"{x} gigawatts"),
                (9, f"{x}ギガワット"),
                (6, f"{x} MW"),
                (6, f"{x}mw"),
                (6, f"{x} megawatts"),
                (6, f"{x}メガワット"),
                (3, f"{x} kW"),
            ]
        )
    )
    return unit, m.scaleb(exp)


@st.composite
def power_in_man_kilowatts(draw: st.DrawFn) -> tuple[str, Decimal]:
    man = draw(st.integers(1, 9999))  # N万キロワット = N * 10^4 * 10^3 W
    return f"{man}万キロワット", Decimal(man).scaleb(7)


@FAST
@given(st.one_of(power_phrase(), power_in_man_kilowatts()), filler, separator, filler, separator, st.booleans())
def test_power_in_any_form_reads_back(
    phrase_value: tuple[str, Decimal], before: str, sep1: str, after: str, sep2: str, wide: bool
) -> None:
    phrase, value = phrase_value
    if wide:
        phrase = full_width(phrase)
    text = normalise(before + sep1 + phrase + sep2 + after)
    assert _facts(extract_amounts(text)) == [("power", value, None, False)], text


@FAST
@given(
    st.one_of(english_money(), japanese_money()),
    st.sampled_from(["up to ", "as much as ", "up to about ", "最大", "最大で", "最大約", "最高", "上限"]),
)
def test_upper_bound_words(phrase_value: tuple[str, Decimal], marker: str) -> None:
    phrase, value = phrase_value
    (a,) = extract_amounts_raw("the deal, " + marker + phrase)
    assert (a.value, a.upper_bound) == (value, True)


FUZZ_ALPHABET = [*"0123456789,.+-~ $€£¥円ドル億万兆千百十一二三数gwmkbntusdoh上限最大ギガワット", "up to ", "billion"]


@FAST
@given(st.lists(st.sampled_from(FUZZ_ALPHABET), max_size=30).map("".join))
def test_any_text_gives_ordered_consistent_amounts(raw: str) -> None:
    text = normalise(raw)
    found = extract_amounts(text)
    last_end = 0
    for a in found:
        assert text[a.start : a.end] == a.text
        assert a.start >= last_end  # document order, no overlap
        last_end = a.end
        assert a.value > 0
        assert (a.currency is None) == (a.kind == "power")


# --- conversion and display --------------------------------------------------------------------------------


def _money(value: str, currency: str, upper: bool = False) -> Amount:
    return Amount("money", D(value), currency, upper, "", 0, 0)


def _power(value: str, upper: bool = False) -> Amount:
    return Amount("power", D(value), None, upper, "", 0, 0)


def test_to_currency() -> None:
    assert to_currency(_money("3e10", "USD"), "JPY") == D("4.5e12")
    assert to_currency(_money("1.5e12", "JPY"), "USD") == D("1e10")
    assert to_currency(_money("1.5e12", "JPY"), "usd") == D("1e10")  # codes in any case
    assert to_currency(_money("9.2e8", "EUR"), "USD") == D("1e9")
    assert to_currency(_money("123", "KRW"), "KRW") == D("123")  # same currency: the value itself


def test_to_currency_gives_none_when_it_cannot_convert() -> None:
    assert to_currency(_power("1e9"), "USD") is None
    assert to_currency(_money("5", "XAU"), "USD") is None
    assert to_currency(_money("5", "USD"), "XAU") is None
    assert to_currency(_money("5", "JPY"), "USD", rates={"USD": D(1)}) is None


def test_to_currency_with_own_rates() -> None:
    rates = {"USD": D(1), "JPY": D(100)}
    assert to_currency(_money("300", "JPY"), "USD", rates) == D(3)


def test_default_rates_are_read_only() -> None:
    assert DEFAULT_RATES["USD"] == 1
    with pytest.raises(TypeError):
        DEFAULT_RATES["USD"] = D(2)  # type: ignore[index]


def test_phrase_to_usd_end_to_end() -> None:
    (a,) = extract_amounts_raw("1兆円")
    usd = to_currency(a, "USD")
    assert usd is not None and D("6.6e9") < usd < D("6.7e9")


@pytest.mark.parametrize(
    ("amount", "expected"),
    [
        (_money("3e10", "USD", upper=True), "USD 30,000,000,000 (up to)"),
        (_money("1.2e12", "JPY"), "JPY 1,200,000,000,000"),
        (_money("2.50", "USD"), "USD 2.5"),
        (_power("1e9"), "1,000,000,000 W (1 GW)"),
        (_power("2.5e9"), "2,500,000,000 W (2.5 GW)"),
        (_power("5e8", upper=True), "500,000,000 W (500 MW, up to)"),
        (_power("1e6"), "1,000,000 W (1 MW)"),
        (_power("1500"), "1,500 W (1.5 kW)"),
        (_power("500"), "500 W"),
        (_power("3e12"), "3,000,000,000,000 W (3 TW)"),
    ],
)
def test_format_amount(amount: Amount, expected: str) -> None:
    assert format_amount(amount) == expected


def test_format_extracted() -> None:
    assert [format_amount(a) for a in extract_amounts_raw("最大300億ドル、100万キロワット")] == [
        "USD 30,000,000,000 (up to)",
        "1,000,000,000 W (1 GW)",
    ]
