"""Condition nodes: the compiled form of a rule's ``any`` / ``all`` / ``none`` / term / ``regex`` tree.

Each node evaluates against a :class:`Doc` (one entry's normalised fields plus what the prefilter found) and
records what made it true in an :class:`Evidence`. Nodes are immutable and built once at load time; evaluation
does no normalisation, no regex compilation and no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

FIELDS = ("text", "title", "summary", "content", "author", "categories", "link", "feed")
"""Fields a condition can look at; ``text`` is title + summary + content."""


@dataclass
class Evidence:
    """What made a rule match: terms as written in the rule, and structured facts (amounts, spans)."""

    terms: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def add_term(self, term: str) -> None:
        if term not in self.terms:
            self.terms.append(term)


class Doc:
    """One entry prepared for matching: normalised fields and the prefilter's findings.

    ``found`` maps (field, phrase) to the spans where that phrase occurs with valid boundaries; it is filled once
    per entry by the matcher's Aho-Corasick pass, so a term lookup is a dict access.
    """

    __slots__ = ("cache", "fields", "found")

    def __init__(self, fields: Mapping[str, str]) -> None:
        self.fields = fields
        self.found: dict[tuple[str, str], list[tuple[int, int]]] = {}
        self.cache: dict[Any, Any] = {}  # per-entry memo for expensive extractions (amounts...)

    def text(self, name: str) -> str:
        return self.fields.get(name, "")


class Condition(Protocol):
    """A node of a compiled rule."""

    @property
    def line(self) -> int | None:
        """Line in rules.yaml where it was written."""

    def evaluate(self, doc: Doc, ev: Evidence) -> bool:
        """True when the condition holds; on success add what matched to `ev`."""

    def terms(self) -> Iterator[Term]:
        """Every literal term below this node, for the prefilter."""

    def requires_literal(self) -> bool:
        """True when the node can only hold if at least one of its literal terms was found.

        Lets the matcher skip a rule entirely when the prefilter found none of its terms.
        """

    def describe(self) -> str:
        """A short human-readable form, for ``watcher rules explain``."""


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

    def terms(self) -> Iterator[Term]:
        yield self

    def requires_literal(self) -> bool:
        return True

    def describe(self) -> str:
        where = "" if self.field == "text" else f" in {self.field}"
        return f'"{self.source}"{where}'


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

    def terms(self) -> Iterator[Term]:
        return iter(())

    def requires_literal(self) -> bool:
        return False

    def describe(self) -> str:
        return f"regex /{self.source}/"


@dataclass(frozen=True)
class AnyOf:
    """True when at least one child holds; collects every child that holds (for the alert's evidence)."""

    children: tuple[Condition, ...]
    line: int | None = None

    def evaluate(self, doc: Doc, ev: Evidence) -> bool:
        ok = False
        for child in self.children:
            if child.evaluate(doc, ev):
                ok = True
        return ok

    def terms(self) -> Iterator[Term]:
        for c in self.children:
            yield from c.terms()

    def requires_literal(self) -> bool:
        return all(c.requires_literal() for c in self.children)

    def describe(self) -> str:
        return "any of [" + ", ".join(c.describe() for c in self.children) + "]"


@dataclass(frozen=True)
class AllOf:
    """True when every child holds; stops at the first that does not."""

    children: tuple[Condition, ...]
    line: int | None = None

    def evaluate(self, doc: Doc, ev: Evidence) -> bool:
        trial = Evidence()
        for child in self.children:
            if not child.evaluate(doc, trial):
                return False
        for t in trial.terms:
            ev.add_term(t)
        ev.details.update(trial.details)
        return True

    def terms(self) -> Iterator[Term]:
        for c in self.children:
            yield from c.terms()

    def requires_literal(self) -> bool:
        return any(c.requires_literal() for c in self.children)

    def describe(self) -> str:
        return "all of [" + ", ".join(c.describe() for c in self.children) + "]"


@dataclass(frozen=True)
class NoneOf:
    """True when no child holds (an exclusion list)."""

    children: tuple[Condition, ...]
    line: int | None = None

    def evaluate(self, doc: Doc, ev: Evidence) -> bool:
        scratch = Evidence()
        return not any(c.evaluate(doc, scratch) for c in self.children)

    def terms(self) -> Iterator[Term]:
        for c in self.children:
            yield from c.terms()

    def requires_literal(self) -> bool:
        return False

    def describe(self) -> str:
        return "none of [" + ", ".join(c.describe() for c in self.children) + "]"


Builder = Callable[..., Condition]
"""How compile.py turns the value under a condition key into a node; see :data:`KINDS`."""

KINDS: dict[str, str] = {
    "any": "at least one of the listed terms or conditions",
    "all": "every listed term or condition",
    "none": "none of the listed terms or conditions",
    "regex": "a regular expression over the normalised text",
}
"""Condition keys a rule (or a nested condition) may use, with the one-line help the docs reuse."""
