"""The single text normalisation used on both sides of a match."""

from __future__ import annotations

import re
import unicodedata

_SPACES = re.compile(r"\s+")


def normalize(text: str) -> str:
    """NFKC, then casefold, then every run of white space as one space.

    NFKC folds full-width forms ("ＮＶＩＤＩＡ" -> "NVIDIA", "１ＧＷ" -> "1GW") and half-width kana; casefold is
    the Unicode-aware lower(). Offsets refer to the normalised text, never to the original.
    """
    return _SPACES.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def is_word_char(ch: str) -> bool:
    """A Latin-script word character: ASCII letter or digit.

    Python's ``\\b`` counts kana and kanji as word characters, so ``\\bnvidia\\b`` fails on "nvidiaが"; terms use
    this narrower test for their boundaries instead.
    """
    return ch.isascii() and ch.isalnum()
