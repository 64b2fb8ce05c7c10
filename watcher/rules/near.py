"""``near:``: a term of one group within N words of a term of another.

The token model (what "N words" counts), on normalised text:

* a run of letters and digits in a script written with spaces (Latin, Cyrillic, Greek...) is one word:
  "microsoft", "gb300", "4" and "5" in "4.5";
* each CJK character (kanji, hiragana, katakana, hangul) is one word, since Japanese has no spaces:
  "演算能力を" is five words;
* spaces and punctuation are not words.

The distance between two occurrences is the number of words strictly between them: "Claude in Microsoft
Foundry" puts 2 words between "claude" and "foundry"; adjacent occurrences are 0 apart. Occurrences that share
a word are no pair (one mention matched by both groups: "Stargate" as a party and as a compute word).
``within: N`` holds when some pair is at most N apart. The relation is symmetric: a before b or b before a.

Word offsets are computed once per field and entry (cached in ``Doc.cache``), and only when both groups occur.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property

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


@dataclass(frozen=True)
class Pair:
    """The closest pair of occurrences found: what `explain` and the hit's details show."""

    a: str  # the text of the group-a occurrence, as found (normalised)
    b: str
    gap: int  # words between them
    a_term: str  # the terms as written in the rule
    b_term: str


_Occurrence = tuple[int, int, str, Span]  # first word, last word, term as written, character span


def _occurrences(tok: Tokens, group: list[tuple[str, Span]]) -> list[_Occurrence]:
    """Occurrences with their word range, sorted by last word; one touching no word at all ("$") is dropped."""
    out = [(*tok.words(span), src, span) for src, span in group]
    return sorted((o for o in out if o[1] >= o[0]), key=lambda o: o[1])


def _best_before(later: list[_Occurrence], earlier: list[_Occurrence]) -> tuple[int, _Occurrence, _Occurrence] | None:
    """The closest pair (gap, x, y) with x in `earlier` ending before y in `later` starts.

    `earlier` is sorted by last word, so the best x for each y is found by bisection: O(n log m).
    """
    lasts = [o[1] for o in earlier]
    best: tuple[int, _Occurrence, _Occurrence] | None = None
    for y in later:
        k = bisect_left(lasts, y[0]) - 1  # the last x whose last word is before y's first word
        if k >= 0:
            gap = y[0] - lasts[k] - 1
            if best is None or gap < best[0]:
                best = (gap, earlier[k], y)
    return best


def closest(doc: Doc, field: str, a: list[tuple[str, Span]], b: list[tuple[str, Span]]) -> Pair | None:
    """The pair of occurrences, one from each group, with the fewest words between them.

    The two must not share a word: one mention matched by both groups ("Stargate" as a party and as a compute
    word, "Microsoft Foundry" against a: [Microsoft] and b: [Microsoft Foundry]) is no pair. Either may come
    first. O((n + m) log(n + m)), however many times a term repeats in a long text.
    """
    if not a or not b:
        return None
    tok = tokens(doc, field)
    occ_a, occ_b = _occurrences(tok, a), _occurrences(tok, b)
    b_first = _best_before(occ_a, occ_b)  # b ... a: (gap, b, a)
    a_first = _best_before(occ_b, occ_a)  # a ... b: (gap, a, b)
    if a_first is not None and (b_first is None or a_first[0] <= b_first[0]):
        gap, x, y = a_first
    elif b_first is not None:
        gap, y, x = b_first
    else:
        return None
    text = doc.text(field)
    (_, _, src_a, (a0, a1)), (_, _, src_b, (b0, b1)) = x, y
    return Pair(text[a0:a1], text[b0:b1], gap, src_a, src_b)


@dataclass(frozen=True)
class Near:
    """A term of group ``a`` within ``within`` words of a term of group ``b`` (see the module doc)."""

    a: tuple[SpanSource, ...]  # terms, entities or regexes
    b: tuple[SpanSource, ...]
    within: int  # most words allowed between the two occurrences
    field: str = "text"
    line: int | None = None

    @cached_property
    def _keys(self) -> tuple[frozenset[tuple[str, str]] | None, frozenset[tuple[str, str]] | None]:
        """Per group, the (field, phrase) keys of its terms, or None when a regex makes it need no term."""

        def keys(group: tuple[SpanSource, ...]) -> frozenset[tuple[str, str]] | None:
            if not all(i.requires_literal() for i in group):
                return None
            return frozenset((t.field, t.phrase) for i in group for t in i.terms())

        return keys(self.a), keys(self.b)

    def _spans(self, doc: Doc, group: tuple[SpanSource, ...]) -> list[tuple[str, Span]]:
        return [s for item in group for s in item.spans(doc)]

    def evaluate(self, doc: Doc, ev: Evidence) -> bool:
        found = doc.found.keys()
        for keys in self._keys:  # a set operation rules most entries out before any span is looked at
            if keys is not None and found.isdisjoint(keys):
                return False
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
            missing = [g for g, s in (("a", a), ("b", b)) if not s]
            why = f"no term of group {missing[0]} found" if len(missing) == 1 else "no term of either group found"
        elif pair is None:
            why = "the two groups only occur as one and the same mention"
        elif pair.gap <= self.within:
            why = _show(pair)
        else:
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
