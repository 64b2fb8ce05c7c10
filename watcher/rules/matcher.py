"""Match entries against many rules fast.

One Aho-Corasick pass per field finds every literal term of every rule at once (pyahocorasick, a C automaton);
boundaries are checked only where a term occurs. Only the rules with at least one term found (plus those that
can match without any term, such as a lone regex) are then evaluated in full. So the cost per entry grows with
the text and with what it contains, not with the number of rules.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import ahocorasick

from ..models import Entry, Hit
from .conditions import Doc, Evidence
from .model import Rule
from .normalize import is_word_char, normalize


@dataclass(frozen=True)
class Feedinfo:
    """The feed an entry came from, as the ``feed`` field sees it."""

    name: str
    tags: tuple[str, ...] = ()


def prepare(entry: Entry, feed: Feedinfo | None = None) -> dict[str, str]:
    """An entry's fields, normalised once."""
    title, summary, content = normalize(entry.title), normalize(entry.summary), normalize(entry.content)
    return {
        "title": title,
        "summary": summary,
        "content": content,
        "text": " \n ".join(p for p in (title, summary, content) if p),
        "author": normalize(entry.author),
        "categories": " \n ".join(normalize(c) for c in entry.categories),
        "link": entry.link.casefold(),
        "feed": normalize(" ".join((feed.name, *feed.tags))) if feed else "",
    }


def _check_boundaries(text: str, start: int, end: int, left: bool, right: bool) -> bool:
    if left and start > 0 and is_word_char(text[start - 1]):
        return False
    return not (right and end < len(text) and is_word_char(text[end]))


class RuleSet:
    """The enabled rules, indexed for matching. Immutable once built; build a new one to reload."""

    def __init__(self, rules: Sequence[Rule]) -> None:
        self.rules: tuple[Rule, ...] = tuple(rules)
        active = [r for r in self.rules if r.enabled]
        self._order = {r.name: i for i, r in enumerate(active)}
        self._active = active
        # per field: an automaton over the phrases used in that field -> (phrase, left?, right?)
        self._automata: dict[str, ahocorasick.Automaton] = {}
        # (field, phrase) -> indexes of the rules that use it
        self._index: dict[tuple[str, str], set[int]] = {}
        self._always: list[int] = []  # rules that can match without any literal term
        phrases: dict[str, set[str]] = {}
        for i, rule in enumerate(active):
            for term in rule.root.terms():
                self._index.setdefault((term.field, term.phrase), set()).add(i)
                phrases.setdefault(term.field, set()).add(term.phrase)
            for term in rule.root.masks():  # exclusions: found, so they can void a term, but never a trigger
                phrases.setdefault(term.field, set()).add(term.phrase)
            if not rule.root.requires_literal():
                self._always.append(i)
        for field, words in phrases.items():
            auto = ahocorasick.Automaton()
            for w in words:
                auto.add_word(w, (w, is_word_char(w[0]), is_word_char(w[-1])))
            auto.make_automaton()
            self._automata[field] = auto

    def __len__(self) -> int:
        return len(self.rules)

    def get(self, name: str) -> Rule | None:
        return next((r for r in self.rules if r.name == name), None)

    def prepare(self, fields: dict[str, str]) -> Doc:
        """Run the prefilter: every term occurrence with valid boundaries, per field."""
        doc = Doc(fields)
        found = doc.found
        for field, auto in self._automata.items():
            text = fields.get(field, "")
            if not text:
                continue
            for end, (phrase, left, right) in auto.iter(text):
                key = (field, phrase)
                start = end - len(phrase) + 1
                if _check_boundaries(text, start, end + 1, left, right):
                    found.setdefault(key, []).append((start, end + 1))
        return doc

    def candidates(self, doc: Doc) -> list[int]:
        idx: set[int] = set(self._always)
        index = self._index
        for key in doc.found:
            idx.update(index.get(key, ()))
        return sorted(idx)

    def match_fields(self, fields: dict[str, str], only: Iterable[str] | None = None) -> list[Hit]:
        doc = self.prepare(fields)
        wanted = set(only) if only is not None else None
        hits: list[Hit] = []
        for i in self.candidates(doc):
            rule = self._active[i]
            if wanted is not None and rule.name not in wanted:
                continue
            ev = Evidence()
            if rule.root.evaluate(doc, ev):
                hits.append(
                    Hit(
                        rule=rule.name,
                        rule_version=rule.version,
                        tags=rule.tags,
                        severity=rule.severity,
                        notify=rule.notify,
                        matched=tuple(ev.terms),
                        details=dict(ev.details),
                        cooldown=rule.cooldown,
                    )
                )
        return hits

    def match(self, entry: Entry, feed: Feedinfo | None = None) -> list[Hit]:
        """The hits of one entry, in rule order."""
        return self.match_fields(prepare(entry, feed))

    def match_text(self, text: str) -> list[Hit]:
        """Match a bare text, as if it were an entry's title (examples, ``rules explain --text``)."""
        return self.match(Entry(key="text", title=text, link=""))
