"""Condition nodes: the compiled form of a rule's ``any`` / ``all`` / ``none`` / term / ``regex`` / entity tree.

Each node evaluates against a :class:`Doc` (one entry's normalised fields plus what the prefilter found) and
records what made it true in an :class:`Evidence`. Nodes are immutable and built once at load time; evaluation
does no normalisation, no regex compilation and no I/O.

Every node has two ways to be asked:

* ``evaluate(doc, ev) -> bool``: the hot path, used on every candidate entry; it stops as early as it can and
  records only what a hit needs;
* ``explain(doc) -> Trace``: the slow path of ``watcher rules explain``; it looks at every child and says what
  it found or missed, so the first failing condition of a rule can be shown with its line. Keeping the two apart
  means the matcher never pays for explanations.

``near.py`` (``near:``) and ``measures.py`` (``amount:``, ``power:``) add nodes of the same shape.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Protocol

FIELDS = ("text", "title", "summary", "content", "author", "categories", "link", "feed")
"""Fields a condition can look at; ``text`` is title + summary + content."""

Span = tuple[int, int]
"""Start and end offsets of an occurrence in a normalised field."""


@dataclass
class Evidence:
    """What made a rule match: terms as written in the rule, and structured facts (amounts, near spans).

    ``details`` maps a kind of fact ("amounts", "near") to a list of short strings; it is stored with the hit as
    JSON and shown in the alert.
    """

    terms: list[str] = field(default_factory=list)
    details: dict[str, list[Any]] = field(default_factory=dict)

    def add_term(self, term: str) -> None:
        if term not in self.terms:
            self.terms.append(term)

    def add_detail(self, kind: str, value: Any) -> None:
        values = self.details.setdefault(kind, [])
        if value not in values:
            values.append(value)

    def merge(self, other: Evidence) -> None:
        for t in other.terms:
            self.add_term(t)
        for kind, values in other.details.items():
            for v in values:
                self.add_detail(kind, v)


class Doc:
    """One entry prepared for matching: normalised fields and the prefilter's findings.

    ``found`` maps (field, phrase) to the spans where that phrase occurs with valid boundaries; it is filled once
    per entry by the matcher's Aho-Corasick pass, so a term lookup is a dict access. ``cache`` memoises the
    expensive per-field extractions (amounts, token offsets) so each runs at most once per entry, and only when
    a candidate rule asks for it.
    """

    __slots__ = ("cache", "fields", "found")

    def __init__(self, fields: Mapping[str, str]) -> None:
        self.fields = fields
        self.found: Mapping[tuple[str, str], list[Span]] = {}
        self.cache: dict[Any, Any] = {}  # per-entry memo for expensive extractions (amounts...)

    def text(self, name: str) -> str:
        return self.fields.get(name, "")

    def memo(self, key: Any, compute: Callable[[], Any]) -> Any:
        """``cache[key]``, computed on first use."""
        try:
            return self.cache[key]
        except KeyError:
            value = self.cache[key] = compute()
            return value


@dataclass(frozen=True)
class Trace:
    """How one node of a rule fared on one entry, for ``watcher rules explain``."""

    ok: bool  # the node held
    what: str  # the node, in short (its describe())
    line: int | None  # where it is written in rules.yaml
    why: str = ""  # what was found, or what was missing
    children: tuple[Trace, ...] = ()  # the traces of its children, in order
    kind: str = ""  # "all", "any", "none", "term"...: how first_failure() walks it

    def brief(self, limit: int = 100) -> str:
        """``line N: what: why``, the node's text cut at `limit` characters."""
        what = self.what if len(self.what) <= limit else self.what[: limit - 1] + "…"
        where = f"line {self.line}: " if self.line is not None else ""
        return f"{where}{what}: {self.why}"

    def first_failure(self) -> Trace | None:
        """The condition to blame when the node does not hold: in an ``all``, its first failing child (searched
        recursively); anything else is itself the failure (an ``any`` where nothing held, a ``none`` where
        something did, a ``near`` with no pair close enough...)."""
        if self.ok:
            return None
        if self.kind == "all":
            for c in self.children:
                if not c.ok:
                    return c.first_failure()
        return self


class Condition(Protocol):
    """A node of a compiled rule."""

    @property
    def line(self) -> int | None:
        """Line in rules.yaml where it was written."""

    def evaluate(self, doc: Doc, ev: Evidence) -> bool:
        """True when the condition holds; on success add what matched to `ev`."""

    def explain(self, doc: Doc) -> Trace:
        """The same verdict as :meth:`evaluate`, with what was found or missed at every node."""

    def terms(self) -> Iterator[Term]:
        """Every literal term below this node whose presence can make it hold, for the prefilter's index."""

    def masks(self) -> Iterator[Term]:
        """Phrases the prefilter must find for this node but that never make a rule a candidate (exclusions)."""

    def requires_literal(self) -> bool:
        """True when the node can only hold if at least one of its literal terms was found.

        Lets the matcher skip a rule entirely when the prefilter found none of its terms.
        """

    def describe(self) -> str:
        """A short human-readable form, for ``watcher rules explain``."""


class SpanSource(Condition, Protocol):
    """A node that holds where some text occurs (a term, an entity, a regex): the items of a ``near`` group."""

    def spans(self, doc: Doc) -> list[tuple[str, Span]]:
        """Every occurrence, as (term as written in the rule, span in the normalised field)."""


def _quote(s: str) -> str:
    return '"' + s + '"'


@dataclass(frozen=True)
class Term:
    """A word or phrase, matched on normalised text.

    Latin-script edges need a word boundary (``meta`` must not match "metadata"); CJK edges do not, since
    Japanese has no spaces ("Nvidiaが" still matches ``nvidia``).
    """

    phrase: str  # normalised
    source: str  # as written in rules.yaml
    field: str = "text"
    line: int | None = None

    def evaluate(self, doc: Doc, ev: Evidence) -> bool:
        if (self.field, self.phrase) in doc.found:
            ev.add_term(self.source)
            return True
        return False

    def explain(self, doc: Doc) -> Trace:
        n = len(doc.found.get((self.field, self.phrase), ()))
        why = f"found {n}x" if n else "not found"
        return Trace(n > 0, self.describe(), self.line, why, kind="term")

    def spans(self, doc: Doc) -> list[tuple[str, Span]]:
        return [(self.source, s) for s in doc.found.get((self.field, self.phrase), ())]

    def terms(self) -> Iterator[Term]:
        yield self

    def masks(self) -> Iterator[Term]:
        return iter(())

    def requires_literal(self) -> bool:
        return True

    def describe(self) -> str:
        where = "" if self.field == "text" else f" in {self.field}"
        return f"{_quote(self.source)}{where}"


@dataclass(frozen=True)
class EntityRef:
    """A named list of terms defined once under ``entities:`` (``@meta`` or ``{entity: meta}`` in a rule).

    It holds where one of its terms occurs, except inside an occurrence of one of its exclusions: with
    ``exclude: [meta-analysis]``, the "meta" in "a meta-analysis of..." does not count (the span of the term
    lies within the span of the exclusion).
    """

    name: str  # as defined under entities:
    members: tuple[Term, ...]  # its terms, in the field of the reference
    exclude: tuple[Term, ...] = ()  # phrases whose occurrences void the terms found inside them
    field: str = "text"
    line: int | None = None

    @cached_property
    def _index(self) -> dict[tuple[str, str], str]:
        """(field, phrase) -> the term as written, for lookups from either side (built on first use)."""
        index: dict[tuple[str, str], str] = {}
        for t in self.members:
            index.setdefault((t.field, t.phrase), t.source)
        return index

    def _found(self, doc: Doc) -> Iterator[tuple[tuple[str, str], str]]:
        """The members the prefilter found, as (key, term as written). An entity may list dozens of terms while
        an entry holds a handful: walk whichever side is smaller."""
        index, found = self._index, doc.found
        if len(found) < len(index):
            return ((k, index[k]) for k in found if k in index)
        return ((k, src) for k, src in index.items() if k in found)

    def spans(self, doc: Doc) -> list[tuple[str, Span]]:
        found = doc.found
        hits = [(src, span) for key, src in self._found(doc) for span in found[key]]
        if not hits or not self.exclude:
            return hits
        masks = [m for x in self.exclude for m in found.get((x.field, x.phrase), ())]
        if not masks:
            return hits
        return [(src, (a, b)) for src, (a, b) in hits if not any(m0 <= a and b <= m1 for m0, m1 in masks)]

    def evaluate(self, doc: Doc, ev: Evidence) -> bool:
        if not self.exclude:  # the common case: as cheap as a list of terms
            ok = False
            for _, src in self._found(doc):
                ev.add_term(src)
                ok = True
            return ok
        spans = self.spans(doc)
        for src, _ in spans:
            ev.add_term(src)
        return bool(spans)

    def explain(self, doc: Doc) -> Trace:
        spans = self.spans(doc)
        if spans:
            why = "found " + ", ".join(dict.fromkeys(_quote(src) for src, _ in spans))
        else:
            raw = [t.source for t in self.members if (t.field, t.phrase) in doc.found]
            why = "found only inside exclusions: " + ", ".join(map(_quote, raw)) if raw else "none of its terms found"
        return Trace(bool(spans), self.describe(), self.line, why, kind="term")

    def terms(self) -> Iterator[Term]:
        yield from self.members

    def masks(self) -> Iterator[Term]:
        yield from self.exclude

    def requires_literal(self) -> bool:
        return True

    def describe(self) -> str:
        where = "" if self.field == "text" else f" in {self.field}"
        return f"@{self.name}{where}"


@dataclass(frozen=True)
class Regex:
    """A regular expression searched in the normalised field (so write it in lower case)."""

    pattern: re.Pattern[str]
    source: str
    field: str = "text"
    line: int | None = None

    def evaluate(self, doc: Doc, ev: Evidence) -> bool:
        m = self.pattern.search(doc.text(self.field))
        if m is None:
            return False
        ev.add_term(m.group(0))
        return True

    def explain(self, doc: Doc) -> Trace:
        m = self.pattern.search(doc.text(self.field))
        why = f"found {_quote(m.group(0))}" if m else "no match"
        return Trace(m is not None, self.describe(), self.line, why, kind="term")

    def spans(self, doc: Doc) -> list[tuple[str, Span]]:
        return [(m.group(0), m.span()) for m in self.pattern.finditer(doc.text(self.field)) if m.end() > m.start()]

    def terms(self) -> Iterator[Term]:
        return iter(())

    def masks(self) -> Iterator[Term]:
        return iter(())

    def requires_literal(self) -> bool:
        return False

    def describe(self) -> str:
        return f"regex /{self.source}/"


def _describe_all(children: tuple[Condition, ...], limit: int = 6) -> str:
    parts = [c.describe() for c in children[:limit]]
    if len(children) > limit:
        parts.append(f"... {len(children) - limit} more")
    return ", ".join(parts)


class _Branches:
    """What a node with children (any / all / none) has in common: its literal terms are theirs."""

    children: tuple[Condition, ...]

    def terms(self) -> Iterator[Term]:
        for c in self.children:
            yield from c.terms()

    def masks(self) -> Iterator[Term]:
        for c in self.children:
            yield from c.masks()


@dataclass(frozen=True)
class AnyOf(_Branches):
    """True when at least one child holds; collects every child that holds (for the alert's evidence)."""

    children: tuple[Condition, ...]
    line: int | None = None

    def evaluate(self, doc: Doc, ev: Evidence) -> bool:
        ok = False
        for child in self.children:
            if child.evaluate(doc, ev):
                ok = True
        return ok

    def explain(self, doc: Doc) -> Trace:
        traces = tuple(c.explain(doc) for c in self.children)
        held = [t.what for t in traces if t.ok]
        if held:
            why = "held: " + ", ".join(held)
        elif all(t.kind == "term" for t in traces):
            why = "none of them found"
        else:  # say why each branch failed, each at its own line
            reasons = [f.brief() for t in traces if (f := t.first_failure()) is not None]
            why = "no branch held: " + " | ".join(reasons)
        return Trace(bool(held), self.describe(), self.line, why, traces, kind="any")

    def requires_literal(self) -> bool:
        return all(c.requires_literal() for c in self.children)

    def describe(self) -> str:
        return "any of [" + _describe_all(self.children) + "]"


@dataclass(frozen=True)
class AllOf(_Branches):
    """True when every child holds; stops at the first that does not."""

    children: tuple[Condition, ...]
    line: int | None = None

    def evaluate(self, doc: Doc, ev: Evidence) -> bool:
        trial = Evidence()
        for child in self.children:
            if not child.evaluate(doc, trial):
                return False
        ev.merge(trial)
        return True

    def explain(self, doc: Doc) -> Trace:
        traces = tuple(c.explain(doc) for c in self.children)
        failed = [t for t in traces if not t.ok]
        why = f"{len(failed)} of {len(traces)} failed" if failed else "all held"
        return Trace(not failed, self.describe(), self.line, why, traces, kind="all")

    def requires_literal(self) -> bool:
        return any(c.requires_literal() for c in self.children)

    def describe(self) -> str:
        return "all of [" + _describe_all(self.children) + "]"


@dataclass(frozen=True)
class NoneOf(_Branches):
    """True when no child holds (an exclusion list)."""

    children: tuple[Condition, ...]
    line: int | None = None

    def evaluate(self, doc: Doc, ev: Evidence) -> bool:
        scratch = Evidence()
        return not any(c.evaluate(doc, scratch) for c in self.children)

    def explain(self, doc: Doc) -> Trace:
        traces = tuple(c.explain(doc) for c in self.children)
        held = [t.what for t in traces if t.ok]
        why = "excluded by " + ", ".join(held) if held else "none found"
        return Trace(not held, self.describe(), self.line, why, traces, kind="none")

    def requires_literal(self) -> bool:
        return False

    def describe(self) -> str:
        return "none of [" + _describe_all(self.children) + "]"


KINDS: dict[str, str] = {
    "any": "at least one of the listed terms or conditions",
    "all": "every listed term or condition",
    "none": "none of the listed terms or conditions",
    "regex": "a regular expression over the normalised text",
    "entity": "one of the terms of an entity defined under entities: (also written '@name' in a term list)",
    "near": "a term of group a within N words of a term of group b (a CJK character counts as a word)",
    "amount": "a money amount in a range, converted to one currency: {currency: USD, min: 1e9}",
    "power": "a power figure in a range, in watts: {min_watts: 1e8}",
}
"""Condition keys a rule (or a nested condition) may use, with the one-line help the docs reuse."""
