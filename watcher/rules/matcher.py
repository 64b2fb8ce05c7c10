"""Match entries against many rules fast.

Everything that depends only on the rules is worked out once, when the RuleSet is built. Per entry, three steps
whose cost follows what the entry contains, not the number of rules:

1. **scan**: one Aho-Corasick pass per field finds every literal term of every rule (ahocorasick_rs, written in
   Rust); a Latin-script edge is checked for a word boundary only where a term occurs. Result: a set of term ids.
2. **select**: each rule has *required groups*, sets of terms of which one each must be found for the rule to
   hold (``all: [{any: [a, b]}, {any: [c]}]`` requires {a, b} and {c}; a lone regex requires none). Group j of
   rule i sets bit i in the "slot j" mask of each of its terms, so the rules whose groups are all satisfied are
   the AND over slots of the OR of the found terms' masks: a few big-int operations per found term (one bit per
   rule, done in C), and the bits come out in rule order. A term under ``none`` of a rule decided in step 3 sets
   its bit in an exclusion mask.
3. **decide**: a rule made only of terms, ``any``, ``all`` and ``none`` (the common case) holds exactly when it
   is selected, and its evidence (the terms found, in rule order) is read from the same set: no Doc, no Evidence;
   its Hit is reused whenever the same terms make it match again.
   Any other rule (regex, and condition kinds this module knows nothing of) is evaluated in full,
   ``rule.root.evaluate(doc, ev)``, on a Doc with spans built once for the entry on first need.

The shortcut in step 3 mirrors what Term, AnyOf, AllOf and NoneOf do; it is used only for nodes of exactly those
types, and tests/test_matcher.py checks it against the full evaluation. bench/match.py measures the whole.
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import ahocorasick_rs

from ..models import Entry, Hit
from .conditions import AllOf, AnyOf, Condition, Doc, Evidence, NoneOf, Term
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


# --- rules -> sets of term ids (load time) ----------------------------------------------------------------

Group = frozenset[int]  # term ids of which at least one must be found


class _TermIds:
    """Interns (field, phrase) as small ints: per-entry sets of ints are cheap to build and to probe."""

    def __init__(self) -> None:
        self.ids: dict[tuple[str, str], int] = {}
        self.keys: list[tuple[str, str]] = []

    def __call__(self, term: Term) -> int:
        key = (term.field, term.phrase)
        tid = self.ids.get(key)
        if tid is None:
            tid = self.ids[key] = len(self.keys)
            self.keys.append(key)
        return tid


def _disjunction(node: Condition, ids: _TermIds) -> list[tuple[int, str]] | None:
    """The terms of a node that holds exactly when one of them is found (a term, or `any` of such), in order."""
    if type(node) is Term:
        return [(ids(node), node.source)]
    if type(node) is AnyOf:
        out: list[tuple[int, str]] = []
        for child in node.children:
            sub = _disjunction(child, ids)
            if sub is None:
                return None
            out += sub
        return out
    return None


@dataclass(frozen=True, slots=True)
class _Exact:
    """A node that holds exactly when each group has a found term and no excluded term is found."""

    groups: tuple[Group, ...]
    excluded: frozenset[int]
    evidence: tuple[tuple[int, str], ...]  # (term id, term as written): what evaluate() records, if found
    terms: frozenset[int]  # the term ids of `evidence`

    @classmethod
    def of(cls, groups: tuple[Group, ...], excluded: frozenset[int], evidence: tuple[tuple[int, str], ...]) -> _Exact:
        return cls(groups, excluded, evidence, frozenset(t for t, _ in evidence))


def _exact(node: Condition, ids: _TermIds) -> _Exact | None:
    """The set form of a node made of terms, any, all and none only; None for any other shape.

    Evidence follows conditions.py: ``any`` records every child that holds, ``all`` (when it holds) its
    children's terms in order, ``none`` nothing.
    """
    terms = _disjunction(node, ids)
    if terms is not None:
        return _Exact.of((frozenset(t for t, _ in terms),), frozenset(), tuple(terms))
    if type(node) is NoneOf:
        excluded: set[int] = set()
        for child in node.children:
            sub = _disjunction(child, ids)
            if sub is None:
                return None
            excluded.update(t for t, _ in sub)
        return _Exact.of((), frozenset(excluded), ())
    if type(node) is AllOf:
        parts: list[_Exact] = []
        for child in node.children:
            part = _exact(child, ids)
            if part is None:
                return None
            parts.append(part)
        return _Exact.of(
            tuple(g for p in parts for g in p.groups),
            frozenset().union(*(p.excluded for p in parts)),
            tuple(e for p in parts for e in p.evidence),
        )
    return None


def _required(node: Condition, ids: _TermIds) -> list[Group]:
    """Groups of which `node` needs one term each to hold: a necessary condition, for any kind of node."""
    if type(node) is Term:
        return [frozenset((ids(node),))]
    if type(node) is AllOf:
        return [g for child in node.children for g in _required(child, ids)]
    if type(node) is AnyOf:
        per_child = [_required(child, ids) for child in node.children]
        if all(per_child):  # every alternative needs a term: one of all those is needed
            return [frozenset().union(*(min(groups, key=len) for groups in per_child))]
        return []
    if type(node) is NoneOf:
        return []
    # another kind (regex, or one added later): its own word on whether it needs a term
    if node.requires_literal():
        terms = frozenset(ids(t) for t in node.terms())
        return [terms] if terms else []
    return []


# --- the scan ---------------------------------------------------------------------------------------------

_DFA, _DFA_MAX_PATTERNS = ahocorasick_rs.Implementation.DFA, 2_000
_WORD = frozenset(string.ascii_letters + string.digits)  # the characters is_word_char() accepts, as a set
_LEFT, _RIGHT = 1, 2  # edges of a term that need a word boundary


def _bounded(text: str, start: int, end: int, edges: int) -> bool:
    """True when the occurrence text[start:end] has a word boundary on each edge that needs one."""
    if edges & _LEFT and start > 0 and text[start - 1] in _WORD:
        return False
    return not (edges & _RIGHT and end < len(text) and text[end] in _WORD)


class _Scanner:
    """One field's automaton over the phrases used in that field, with what each match needs checking."""

    __slots__ = ("automaton", "edges", "field", "tids")

    def __init__(self, field: str, tids: list[int], phrases: list[str]) -> None:
        self.field = field
        # The DFA searches fastest while its tables stay in the CPU caches; past ~2,000 patterns the library's
        # default (a contiguous NFA, much smaller) measured faster within the whole match (bench/match.py: DFA
        # +30% at ~300 patterns, +13% at 1,100, -5% at 2,700).
        small = len(phrases) <= _DFA_MAX_PATTERNS
        self.automaton = ahocorasick_rs.AhoCorasick(phrases, implementation=_DFA if small else None)
        self.tids = tuple(tids)  # pattern index -> term id
        self.edges = tuple(  # pattern index -> edges that need a word boundary
            (_LEFT if is_word_char(p[0]) else 0) | (_RIGHT if is_word_char(p[-1]) else 0) for p in phrases
        )

    def scan(self, text: str, found: set[int]) -> None:
        """Add to `found` the ids of the terms that occur in `text` with valid boundaries."""
        n, tids, edges = len(text), self.tids, self.edges
        for pid, start, end in self.automaton.find_matches_as_indexes(text, overlapping=True):
            tid = tids[pid]
            if tid in found:
                continue
            e = edges[pid]
            if e:  # _bounded(), inlined: this runs for every occurrence of every term
                if e & _LEFT and start and text[start - 1] in _WORD:
                    continue
                if e & _RIGHT and end < n and text[end] in _WORD:
                    continue
            found.add(tid)

    def spans(self, text: str) -> Iterator[tuple[int, int, int]]:
        """(term id, start, end) of every occurrence with valid boundaries, overlapping ones included."""
        for pid, start, end in self.automaton.find_matches_as_indexes(text, overlapping=True):
            if _bounded(text, start, end, self.edges[pid]):
                yield self.tids[pid], start, end


# --- the selection ---------------------------------------------------------------------------------------


class _Selector:
    """Step 2: the rules whose required groups all have a found term, less those a found term excludes.

    Rule i's j-th group sets bit i in the slot-j mask of each of its terms (a rule with fewer groups has bit i
    preset in the later slots); its exclusions set bit i in the exclusion mask. Per entry: OR the masks of the
    found terms slot by slot, AND the slots, clear the excluded bits. Python's big ints do the work in C.
    """

    def __init__(self, terms: int, required: Sequence[Sequence[Group]], excluded: Sequence[frozenset[int]]) -> None:
        self.slots = max((len(groups) for groups in required), default=0)  # slot `slots`: the exclusions
        masks: list[dict[int, int]] = [{} for _ in range(terms)]  # per term id: slot -> rule bits
        self.pad = [0] * (self.slots + 1)
        for i, groups in enumerate(required):
            bit = 1 << i
            for slot in range(self.slots):
                if slot < len(groups):
                    for tid in groups[slot]:
                        masks[tid][slot] = masks[tid].get(slot, 0) | bit
                else:
                    self.pad[slot] |= bit
            for tid in excluded[i]:
                masks[tid][self.slots] = masks[tid].get(self.slots, 0) | bit
        self.masks = [tuple(m.items()) for m in masks]
        self.all = (1 << len(required)) - 1

    def select(self, found: set[int]) -> list[int]:
        """Indexes of the selected rules, in rule order."""
        acc = self.pad.copy()
        masks = self.masks
        for tid in found:
            for slot, bits in masks[tid]:
                acc[slot] |= bits
        selected = self.all & ~acc[self.slots]
        for slot in range(self.slots):
            selected &= acc[slot]
        out: list[int] = []
        while selected:
            low = selected & -selected
            out.append(low.bit_length() - 1)
            selected ^= low
        return out


# --- the rule set -----------------------------------------------------------------------------------------

_NO_DETAILS: Mapping[str, object] = MappingProxyType({})  # shared by reused hits, so read-only
_HIT_CACHE_SIZE = 50_000


class RuleSet:
    """The enabled rules, indexed for matching. Immutable once built (but for a memo); build a new one to reload."""

    def __init__(self, rules: Sequence[Rule]) -> None:
        self.rules: tuple[Rule, ...] = tuple(rules)
        self._active = [r for r in self.rules if r.enabled]
        ids = _TermIds()
        self._exact: list[_Exact | None] = []  # per active rule: its set form, if it has one
        required: list[list[Group]] = []
        for rule in self._active:
            for term in rule.root.terms():  # every term is scanned for, those only under `none` too
                ids(term)
            for term in rule.root.masks():  # entity exclusions: scanned, so they can void a term, never a trigger
                ids(term)
            exact = _exact(rule.root, ids)
            self._exact.append(exact)
            required.append(list(exact.groups) if exact is not None else _required(rule.root, ids))
        self._keys, self._ids = ids.keys, ids.ids
        by_field: dict[str, list[int]] = {}
        for tid, (field, _) in enumerate(ids.keys):
            by_field.setdefault(field, []).append(tid)
        self._scanners = tuple(
            _Scanner(field, tids, [ids.keys[t][1] for t in tids]) for field, tids in by_field.items()
        )
        excluded = [e.excluded if e is not None else frozenset() for e in self._exact]
        self._selector = _Selector(len(ids.keys), required, excluded)
        # The hit of an exact rule depends only on the rule and the terms found: built once, then reused (a
        # frozen dataclass of seven fields costs more to build than deciding the rule). Bounded; dropped with the
        # RuleSet on reload.
        self._hit_cache: dict[tuple[int, frozenset[int]], Hit] = {}

    def __len__(self) -> int:
        return len(self.rules)

    def get(self, name: str) -> Rule | None:
        return next((r for r in self.rules if r.name == name), None)

    # --- the three steps -----------------------------------------------------------------------------------

    def _scan(self, fields: Mapping[str, str]) -> set[int]:
        """Step 1: ids of the terms that occur in their field, with valid boundaries."""
        found: set[int] = set()
        for scanner in self._scanners:
            text = fields.get(scanner.field)
            if text:
                scanner.scan(text, found)
        return found

    def prepare(self, fields: Mapping[str, str]) -> Doc:
        """A Doc for full evaluation: every term occurrence with valid boundaries, as spans, per field."""
        doc = Doc(fields)
        for scanner in self._scanners:
            text = fields.get(scanner.field)
            if text:
                for tid, start, end in scanner.spans(text):
                    doc.found.setdefault(self._keys[tid], []).append((start, end))
        return doc

    def candidates(self, doc: Doc) -> list[int]:
        """Indexes of the rules the prefilter lets through for `doc`: those then decided or evaluated."""
        return self._selector.select({self._ids[key] for key in doc.found})

    def match_fields(self, fields: Mapping[str, str], only: Iterable[str] | None = None) -> list[Hit]:
        found = self._scan(fields)
        wanted = set(only) if only is not None else None
        doc: Doc | None = None
        hits: list[Hit] = []
        exacts, cache = self._exact, self._hit_cache
        for i in self._selector.select(found):
            if wanted is not None and self._active[i].name not in wanted:
                continue
            exact = exacts[i]
            if exact is not None:  # selected means matched; the hit depends only on which of its terms are found
                key = (i, exact.terms & found)
                hit = cache.get(key)
                hits.append(hit if hit is not None else self._exact_hit(key, exact))
                continue
            rule = self._active[i]
            if doc is None:
                doc = self.prepare(fields)
            ev = Evidence()
            if rule.root.evaluate(doc, ev):
                hits.append(_hit(rule, tuple(ev.terms), dict(ev.details)))
        return hits

    def _exact_hit(self, key: tuple[int, frozenset[int]], exact: _Exact) -> Hit:
        """The hit of exact rule key[0], its terms key[1] found: the terms as written, in the order evaluation
        would list them, each once."""
        i, found = key
        matched: list[str] = []
        for tid, source in exact.evidence:
            if tid in found and source not in matched:
                matched.append(source)
        if len(self._hit_cache) >= _HIT_CACHE_SIZE:
            self._hit_cache.clear()
        hit = self._hit_cache[key] = _hit(self._active[i], tuple(matched), _NO_DETAILS)
        return hit

    def match(self, entry: Entry, feed: Feedinfo | None = None) -> list[Hit]:
        """The hits of one entry, in rule order."""
        return self.match_fields(prepare(entry, feed))

    def match_text(self, text: str) -> list[Hit]:
        """Match a bare text, as if it were an entry's title (examples, ``rules explain --text``)."""
        return self.match(Entry(key="text", title=text, link=""))


def _hit(rule: Rule, matched: tuple[str, ...], details: Mapping[str, object]) -> Hit:
    return Hit(
        rule=rule.name,
        rule_version=rule.version,
        tags=rule.tags,
        severity=rule.severity,
        notify=rule.notify,
        matched=matched,
        details=details,
        cooldown=rule.cooldown,
    )
