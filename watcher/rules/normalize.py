"""The single text normalisation used on both sides of a match."""

from __future__ import annotations

import re
import unicodedata

# Characters that NFKC leaves alone whatever surrounds them: each is its own NFKC form, has combining class 0 and
# is never the second half of a composition. Text can be cut before any of them and each piece normalised alone
# (tests/test_normalize_fast.py checks the list against unicodedata). Chosen for what news text is made of:
# ASCII, hiragana and katakana letters, the long-vowel mark, CJK ideographs, Japanese punctuation.
STABLE = (
    (0x0000, 0x007F),  # ASCII
    (0x3001, 0x3002),  # 、。
    (0x300C, 0x300F),  # 「」『』
    (0x3041, 0x3096),  # hiragana letters
    (0x30A1, 0x30FA),  # katakana letters
    (0x30FC, 0x30FC),  # ー
    (0x4E00, 0x9FFF),  # CJK unified ideographs
)
_UNSTABLE_RUN = re.compile("[^" + "".join(f"\\U{a:08x}-\\U{b:08x}" for a, b in STABLE) + "]+")


def nfkc(text: str) -> str:
    """``unicodedata.normalize("NFKC", text)``, faster on long text that is mostly normalised already.

    CPython's NFKC takes ~100 ns a character once a string needs any change (a Japanese summary with one
    full-width "ＧＷ" costs ~50 µs); here only the runs of other characters are normalised, each with the stable
    character before it (which a following combining mark may compose with, as in "か" + U+3099 -> "が").
    """
    if text.isascii() or unicodedata.is_normalized("NFKC", text):
        return text
    parts: list[str] = []
    pos = 0
    for m in _UNSTABLE_RUN.finditer(text):
        start = max(m.start() - 1, pos)
        parts.append(text[pos:start])
        parts.append(unicodedata.normalize("NFKC", text[start : m.end()]))
        pos = m.end()
    parts.append(text[pos:])
    return "".join(parts)


def normalize(text: str) -> str:
    """NFKC, then casefold, then every run of white space as one space.

    NFKC folds full-width forms ("ＮＶＩＤＩＡ" -> "NVIDIA", "１ＧＷ" -> "1GW") and half-width kana; casefold is
    the Unicode-aware lower(). Offsets refer to the normalised text, never to the original. (``str.split()`` and
    ``strip()`` use the same white space as ``re``'s ``\\s``.)
    """
    return " ".join(nfkc(text).casefold().split())


def is_word_char(ch: str) -> bool:
    """A Latin-script word character: ASCII letter or digit.

    Python's ``\\b`` counts kana and kanji as word characters, so ``\\bnvidia\\b`` fails on "nvidiaが"; terms use
    this narrower test for their boundaries instead.
    """
    return ch.isascii() and ch.isalnum()
