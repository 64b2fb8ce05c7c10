"""The fast NFKC in normalize.py against unicodedata, and normalize() against its plain definition."""

from __future__ import annotations

import re
import unicodedata

from hypothesis import given, settings
from hypothesis import strategies as st

from watcher.rules.normalize import STABLE, nfkc, normalize


def _composition_seconds() -> set[int]:
    """Code points that can be the second half of a canonical composition (NFC_QC=Maybe, roughly)."""
    out = {cp for cp in range(0x1161, 0x1176)} | {cp for cp in range(0x11A8, 0x11C3)}  # Hangul V and T jamo
    for cp in range(0x110000):
        d = unicodedata.decomposition(chr(cp))
        if d and not d.startswith("<") and len(parts := d.split()) == 2:
            out.add(int(parts[1], 16))
    return out


def test_stable_characters_are_left_alone_by_nfkc_whatever_surrounds_them() -> None:
    seconds = _composition_seconds()
    for first, last in STABLE:
        for cp in range(first, last + 1):
            c = chr(cp)
            assert unicodedata.normalize("NFKC", c) == c, hex(cp)
            assert unicodedata.combining(c) == 0, hex(cp)
            assert cp not in seconds, hex(cp)


# characters that make NFKC work: full-width and half-width forms, combining marks (voiced sound marks, accents
# in both orders), compatibility ideographs and squared words, Hangul jamo, ligatures, odd spaces
TRICKY = list(
    "aAzZ09 .,-'カかがｶﾞﾟﾊﾟ\u3099\u309a゛゜ＮＶＩＤＩＡ１ＧＷ\u3000㍿①ﬁẞß"
    "e\u0301\u0323\u0300o\u0308\u1100\u1161\u11a8가각\uf900\u2f00\u00a0\u2028\x1c\x85\t\n漢字データ。、「」ー"
)
# and pairs that compose across the cut the fast path makes (a stable base, then a mark)
PAIRS = ["か\u3099", "カ\u309a", "e\u0301", "a\u0323\u0302", "o\u0308", "\u1100\u1161\u11a8", "ｶﾞ", "ﾊﾟ"]
texty = st.lists(st.sampled_from(TRICKY + PAIRS) | st.characters(), max_size=30).map("".join)


@settings(max_examples=1000, deadline=None)
@given(texty)
def test_fast_nfkc_is_nfkc(s: str) -> None:
    assert nfkc(s) == unicodedata.normalize("NFKC", s)


_SPACES = re.compile(r"\s+")


@settings(max_examples=500, deadline=None)
@given(texty)
def test_normalize_is_nfkc_casefold_and_collapsed_spaces(s: str) -> None:
    assert normalize(s) == _SPACES.sub(" ", unicodedata.normalize("NFKC", s).casefold()).strip()


def test_examples() -> None:
    assert normalize("ＮＶＩＤＩＡ　クラウド契約　１００億ドル") == "nvidia クラウド契約 100億ドル"
    assert normalize("ｶﾞｿﾘﾝ  STRASSE\tstraße") == "ガソリン strasse strasse"
    assert normalize("か\u3099") == "が"
