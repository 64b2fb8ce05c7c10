"""``near:``: a term of one group within N words of a term of another.

The token model (what "N words" counts), on normalised text:

* a run of letters and digits in a script written with spaces (Latin, Cyrillic, Greek...) is one word:
  "microsoft", "gb300", "4" and "5" in "4.5";
* each CJK character (kanji, hiragana, katakana, hangul) is one word, since Japanese has no spaces:
  "演算能力を" is five words;
* spaces and punctuation are not words.

The distance between two occurrences is the number of words strictly between them: "Claude in Microsoft
Foundry" puts 2 words between "claude" and "foundry"; adjacent or overlapping occurrences are 0 apart.
``within: N`` holds when some pair is at most N apart. The relation is symmetric: a before b or b before a.

Word offsets are computed once per field and entry (cached in ``Doc.cache``), and only when both groups occur.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Iterator
from dataclasses import dataclass

from .conditions import Doc, Evidence, Span, SpanSource, Term, Trace

_CJK = "\u3005\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af\uff66-\uff9f"
_TOKEN = re.compile(rf"[{_CJK}]|[^\W_{_CJK}]+")


@dataclass(frozen=True)
class Tokens:
    """Where each word of a text starts and ends (two sorted lists), to turn character spans into word indexes."""

    starts: list[int]
    ends: list[int]

    @classmethod
    def of(cls, text: str) -> Tokens:
        starts: list[int] = []
        ends: list[int] = []
        for m in _TOKEN.finditer(text):
            starts.append(m.start())
            ends.append(m.end())
        return cls(starts, ends)

    def words(self, span: Span) -> tuple[int, int]:
        """The indexes of the first and last word a character span touches."""
        start, end = span
        return bisect_right(self.ends, start), bisect_left(self.starts, end) - 1


def tokens(doc: Doc, field: str) -> Tokens:
    """The word offsets of one field, computed once per entry."""
    return doc.memo(("tokens", field), lambda: Tokens.of(doc.text(field)))  # type: ignore[no-any-return]


def words_between(a: tuple[int, int], b: tuple[int, int]) -> int:
    """Words strictly between two word ranges; 0 when they touch or overlap."""
    return max(0, max(a[0], b[0]) - min(a[1], b[1]) - 1)


@dataclass(frozen=True)
class Pair:
    """The closest pair of occurrences found: what `explain` and the hit's details show."""

    a: str  # the text of the group-a occurrence, as found (normalised)
    b: str
    gap: int  # words between them
    a_term: str  # the terms as written in the rule
    b_term: str


def closest(doc: Doc, field: str, a: list[tuple[str, Span]], b: list[tuple[str, Span]]) -> Pair | None:
    """The pair with the fewest words between, by one sweep over both groups sorted by position.

    Sorted by first word, the best partner of an occurrence among those that start before it is the one of the
    other group that reaches furthest (its last word is the largest). Both orders are covered, so the result is
    the true minimum, in O((n + m) log(n + m)) however many times a term repeats in a long text.
    """
    if not a or not b:
        return None
    tok = tokens(doc, field)
    text = doc.text(field)
    Occurrence = tuple[tuple[int, int], int, str, Span]  # (first and last word, group, term, span)
    items: list[Occurrence] = [(tok.words(span), 0, src, span) for src, span in a]
    items += [(tok.words(span), 1, src, span) for src, span in b]
    items.sort(key=lambda it: it[0][0])
    furthest: list[Occurrence | None] = [None, None]  # per group: the occurrence reaching furthest so far
    best: tuple[int, Occurrence, Occurrence] | None = None
    for item in items:
        words, group = item[0], item[1]
        other = furthest[1 - group]
        if other is not None:
            gap = words_between(words, other[0])
            if best is None or gap < best[0]:
                best = (gap, item, other) if group == 0 else (gap, other, item)
                if gap == 0:
                    break
        mine = furthest[group]
        if mine is None or words[1] > mine[0][1]:
            furthest[group] = item
    if best is None:
        return None
    gap, (_, _, src_a, (a0, a1)), (_, _, src_b, (b0, b1)) = best
    return Pair(text[a0:a1], text[b0:b1], gap, src_a, src_b)


@dataclass(frozen=True)
class Near:
    """A term of group ``a`` within ``within`` words of a term of group ``b`` (see the module doc)."""

    a: tuple[SpanSource, ...]  # terms, entities or regexes
    b: tuple[SpanSource, ...]
    within: int  # most words allowed between the two occurrences
    field: str = "text"
    line: int | None = None

    def _spans(self, doc: Doc, group: tuple[SpanSource, ...]) -> list[tuple[str, Span]]:
        return [s for item in group for s in item.spans(doc)]

    def evaluate(self, doc: Doc, ev: Evidence) -> bool:
        a = self._spans(doc, self.a)
        if not a:
            return False
        pair = closest(doc, self.field, a, self._spans(doc, self.b))
        if pair is None or pair.gap > self.within:
            return False
        ev.add_term(pair.a_term)
        ev.add_term(pair.b_term)
        ev.add_detail("near", _show(pair))
        return True

    def explain(self, doc: Doc) -> Trace:
        a, b = self._spans(doc, self.a), self._spans(doc, self.b)
        pair = closest(doc, self.field, a, b)
        if not a or not b:
            missing = " and ".join(g for g, s in (("a", a), ("b", b)) if not s)
            why = f"no term of group {missing} found"
        elif pair is not None and pair.gap <= self.within:
            why = _show(pair)
        else:
            assert pair is not None
            why = f"closest pair too far: {_show(pair)}"
        ok = pair is not None and pair.gap <= self.within
        return Trace(ok, self.describe(), self.line, why, kind="near")

    def terms(self) -> Iterator[Term]:
        for item in (*self.a, *self.b):
            yield from item.terms()

    def masks(self) -> Iterator[Term]:
        for item in (*self.a, *self.b):
            yield from item.masks()

    def requires_literal(self) -> bool:
        return all(i.requires_literal() for i in self.a) or all(i.requires_literal() for i in self.b)

    def describe(self) -> str:
        def group(items: tuple[SpanSource, ...]) -> str:
            return "[" + ", ".join(i.describe() for i in items) + "]"

        return f"near {group(self.a)} within {self.within} words of {group(self.b)}"


def _show(pair: Pair) -> str:
    words = "word" if pair.gap == 1 else "words"
    return f'"{pair.a}" … "{pair.b}" ({pair.gap} {words} apart)'
