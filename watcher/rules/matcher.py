"""Match entries against many rules fast.

Everything that depends only on the rules is worked out once, when the RuleSet is built. Per entry, three steps
whose cost follows what the entry contains, not the number of rules:

1. **scan**: one Aho-Corasick pass per field over its UTF-8 bytes finds every literal term of every rule
   (ahocorasick_rs, written in Rust; the pass over ``text`` finds the ``title`` terms too); a Latin-script edge
   is checked for a word boundary only where a term occurs. Result: a set of term ids.
2. **select**: each rule has *required groups*, sets of terms of which one each must be found for the rule to
   hold (``all: [{any: [a, b]}, {any: [c]}]`` requires {a, b} and {c}; a lone regex requires none). Group j of
   rule i sets bit i in slot j of the big int of each of its terms, so the rules whose groups are all satisfied
   are the AND over slots of the OR of the found terms' ints: one C-level reduce over the found terms and a few
   shifts (one bit per rule), and the bits come out in rule order. A term under ``none`` of a rule decided in
   step 3 sets its bit in the exclusion slot.
3. **decide**: a rule made only of terms, ``any``, ``all`` and ``none`` (the common case) holds exactly when it
   is selected, and its evidence (the terms found, in rule order) is read from the same set: no Doc, no Evidence;
   its Hit is reused whenever the same terms make it match again.
   Any other rule (regex, and condition kinds this module knows nothing of) is evaluated in full,
   ``rule.root.evaluate(doc, ev)``, on a Doc with spans built once for the entry on first need.

The shortcut in step 3 mirrors what Term, AnyOf, AllOf and NoneOf do; it is used only for nodes of exactly those
types, and tests/test_matcher.py checks it against the full evaluation. bench/match.py measures the whole.

Steps 1 (after the automaton) and 2 also exist in C, in the optional extension _select.c (native.py), which takes the
automaton's matches and returns the term ids found, the selected rules and their memo keys: per occurrence and
per (term, group), a few machine instructions instead of a few Python ones. The C steps count, for each rule a
found term belongs to, the groups with a found term, rather than OR big ints. RuleSet uses them when the
extension is built (``NATIVE``), else the Python steps here, which stay the reference: tests/test_matcher.py runs
both on the same rules and entries.
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property, reduce
from itertools import chain
from operator import or_
from types import MappingProxyType

import ahocorasick_rs

from ..models import Entry, Hit
from .conditions import AllOf, AnyOf, Condition, Doc, Evidence, NoneOf, Span, Term
from .model import Rule
from .native import NATIVE, build_index
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


@dataclass(frozen=True, slots=True)
class _Evidence:
    """What an exact rule's hit records, given the terms found: the terms as written, in the order evaluation
    would list them, each once (see _exact). A term id may stand at several places, written differently."""

    places: Mapping[int, tuple[int, ...]]  # term id -> its places in the evidence
    sources: tuple[str, ...]  # place -> the term as written

    @classmethod
    def of(cls, exact: _Exact) -> _Evidence:
        places: dict[int, tuple[int, ...]] = {}
        for place, (tid, _) in enumerate(exact.evidence):
            places[tid] = (*places.get(tid, ()), place)
        return cls(places, tuple(source for _, source in exact.evidence))

    def matched(self, found: Iterable[int]) -> tuple[str, ...]:
        """`found`: term ids of the rule only."""
        sources = self.sources
        places = sorted(chain.from_iterable(map(self.places.__getitem__, found)))
        return tuple(dict.fromkeys([sources[place] for place in places]))


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
_WORD_CHARS = string.ascii_letters + string.digits  # the characters is_word_char() accepts
_WORD = frozenset(_WORD_CHARS)
_LEFT, _RIGHT = 1, 2  # edges of a term that need a word boundary


def _bounded(text: str, start: int, end: int, edges: int) -> bool:
    """True when the occurrence text[start:end] has a word boundary on each edge that needs one."""
    if edges & _LEFT and start > 0 and text[start - 1] in _WORD:
        return False
    return not (edges & _RIGHT and end < len(text) and text[end] in _WORD)


class _Scanner:
    """One field's automaton over the phrases used in that field, for the spans a full evaluation reads."""

    __slots__ = ("automaton", "edges", "field", "tids")

    def __init__(self, field: str, tids: list[int], phrases: list[str]) -> None:
        self.field = field
        self.automaton = ahocorasick_rs.AhoCorasick(phrases, implementation=_implementation(len(phrases)))
        self.tids = tuple(tids)  # pattern index -> term id
        self.edges = tuple(_edges(p) for p in phrases)  # pattern index -> edges that need a word boundary

    def spans(self, text: str) -> Iterator[tuple[int, int, int]]:
        """(term id, start, end) of every occurrence with valid boundaries, overlapping ones included."""
        for pid, start, end in self.automaton.find_matches_as_indexes(text, overlapping=True):
            if _bounded(text, start, end, self.edges[pid]):
                yield self.tids[pid], start, end


class _Spans(Mapping[tuple[str, str], list[Span]]):
    """``doc.found`` for a rule evaluated in full after the scan: the (field, phrase) keys the scan found, each
    key's spans worked out on first access (``str.find`` over its field, with the scan's boundary test). A
    rule reads the spans of a few terms; a second automaton pass over every field for all of them cost more
    than the rest of the match (bench/poll.py's entries, the shipped rules).

    The keys iterate in the order that pass would have found them (an entity walks them, and its evidence
    follows): field by field in `fields_order`, then by the end of each phrase's first occurrence, the
    longer of two phrases ending together first (the automaton reports a match before its suffixes).
    The C steps find the terms in that order already, field by field as scanned: given `in_scan_order`, only
    the fields are put in order (a stable sort). tests/test_matcher.py checks every hit against
    RuleSet.prepare's full pass.
    """

    __slots__ = ("_fields", "_in_scan_order", "_keys", "_order", "_ordered", "_spans")

    def __init__(
        self,
        fields: Mapping[str, str],
        keys: set[tuple[str, str]],
        order: Mapping[str, int],
        in_scan_order: Sequence[tuple[str, str]] | None = None,
    ) -> None:
        self._fields, self._keys, self._order, self._in_scan_order = fields, keys, order, in_scan_order
        self._spans: dict[tuple[str, str], list[Span]] = {}
        self._ordered: list[tuple[str, str]] | None = None

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def __iter__(self) -> Iterator[tuple[str, str]]:
        if self._ordered is None:
            order, fields = self._order, self._fields
            if self._in_scan_order is not None:
                self._ordered = sorted(self._in_scan_order, key=lambda k: order.get(k[0], 0))
            else:
                self._ordered = sorted(
                    self._keys,
                    key=lambda k: (order.get(k[0], 0), _first_end(fields.get(k[0], ""), k[1]), -len(k[1])),
                )
        return iter(self._ordered)

    def __len__(self) -> int:
        return len(self._keys)

    def __getitem__(self, key: tuple[str, str]) -> list[Span]:
        spans = self._spans.get(key)
        if spans is None:
            if key not in self._keys:
                raise KeyError(key)
            field, phrase = key
            spans = self._spans[key] = _occurrences(self._fields.get(field, ""), phrase)
        return spans


def _bounded_starts(text: str, phrase: str) -> Iterator[int]:
    """Where `phrase` occurs in `text` with valid boundaries, overlapping occurrences included (as the
    automaton reports them)."""
    edges, start = _edges(phrase), text.find(phrase)
    while start != -1:
        if _bounded(text, start, start + len(phrase), edges):
            yield start
        start = text.find(phrase, start + 1)


def _first_end(text: str, phrase: str) -> int:
    """Where the first occurrence of `phrase` in `text` with valid boundaries ends (-1: none)."""
    start = next(_bounded_starts(text, phrase), -1)
    return -1 if start == -1 else start + len(phrase)


def _occurrences(text: str, phrase: str) -> list[Span]:
    """Every occurrence of `phrase` in `text` with valid boundaries, as spans."""
    return [(start, start + len(phrase)) for start in _bounded_starts(text, phrase)]


def _implementation(patterns: int) -> ahocorasick_rs.Implementation | None:
    # The DFA searches fastest while its tables stay in the CPU caches; past ~2,000 patterns the library's
    # default (a contiguous NFA, much smaller) measured faster within the whole match (bench/match.py: DFA
    # +30% at ~300 patterns, +13% at 1,100, -5% at 2,700).
    return _DFA if patterns <= _DFA_MAX_PATTERNS else None


def _edges(phrase: str) -> int:
    return (_LEFT if is_word_char(phrase[0]) else 0) | (_RIGHT if is_word_char(phrase[-1]) else 0)


_IS_WORD_BYTE = tuple(b in _WORD_CHARS.encode() for b in range(256))  # byte value -> is an ASCII letter or digit
_NONE = -1  # in a pattern -> term id table: the pattern is not a term of that field
_PAD = b" "  # around the data scanned: a non-word byte on each side of every match, no edge of the text to test


class _IdScanner:
    """Step 1 for one field: the ids of the terms found in it, over the UTF-8 bytes of the text.

    Bytes, because the search is ~10% faster when the library need not map byte offsets back to characters,
    and the ids need no offsets. A match in UTF-8 is a match in characters (an encoded phrase starts with a
    lead byte and ends with a whole character), and the character beside an edge is an ASCII letter or digit
    exactly when the byte beside it is one (the bytes of other characters are all >= 0x80). The bytes are
    scanned between two spaces: no phrase starts or ends with white space (normalize() strips it), so no
    match takes in a pad, and every match has a byte on each side to test, a space where the text ends.

    The ``text`` field (title + " \n " + summary + ... , see prepare()) holds the title as its prefix, so the
    automaton for ``text`` also carries the ``title`` phrases: a match that ends inside the prefix is also a
    match in the title, with the same boundaries (the title's end is a boundary, and so is the space after
    it). One pass over the text then finds the terms of both fields. `prefix` maps pattern -> title term id.
    """

    __slots__ = ("automaton", "field", "left", "prefix", "right", "tids")

    def __init__(self, field: str, phrases: list[str], tids: list[int], prefix: list[int]) -> None:
        if any(p != p.strip() or not p for p in phrases):
            raise ValueError("phrases must be normalised: not empty, no white space at either end")
        self.field = field
        encoded = [p.encode() for p in phrases]
        self.automaton = ahocorasick_rs.BytesAhoCorasick(encoded, implementation=_implementation(len(phrases)))
        self.tids = tuple(tids)  # pattern index -> term id in `field`, or _NONE
        self.prefix = tuple(prefix)  # pattern index -> term id in the prefix field (title), or _NONE
        edges = [_edges(p) for p in phrases]
        self.left = tuple(bool(e & _LEFT) for e in edges)  # pattern index -> needs a boundary before it
        self.right = tuple(bool(e & _RIGHT) for e in edges)  # ... after it

    def scan(self, text: bytes, found: set[int], tids: tuple[int, ...], prefix_len: int = 0) -> None:
        """Add to `found` the ids (from `tids`, and from self.prefix for matches within the first `prefix_len`
        bytes) of the terms that occur in `text` with valid boundaries."""
        data = b"".join((_PAD, text, _PAD))
        left, right, word, prefix, add = self.left, self.right, _IS_WORD_BYTE, self.prefix, found.add
        end_of_prefix = prefix_len + len(_PAD)
        # _bounded(), inlined, on bytes and table lookups: this runs for every occurrence of every term
        for pid, start, end in self.automaton.find_matches_as_indexes(data, overlapping=True):
            if (left[pid] and word[data[start - 1]]) or (right[pid] and word[data[end]]):
                continue
            add(tids[pid])
            if end <= end_of_prefix:
                add(prefix[pid])
        found.discard(_NONE)


def _id_scanners(by_field: Mapping[str, list[int]], keys: Sequence[tuple[str, str]]) -> tuple[_IdScanner, ...]:
    """One _IdScanner per field, but none for ``title``: its phrases go into the one for ``text``."""
    fields = [f for f in by_field if f != "title"]
    if "title" in by_field and "text" not in by_field:
        fields.append("text")
    out: list[_IdScanner] = []
    for field in fields:
        tids = list(by_field.get(field, ()))
        phrases = [keys[t][1] for t in tids]
        prefix = [_NONE] * len(tids)
        if field == "text":
            index = {p: i for i, p in enumerate(phrases)}
            for tid in by_field.get("title", ()):
                phrase = keys[tid][1]
                i = index.get(phrase)
                if i is None:  # a phrase used in the title only
                    i = index[phrase] = len(phrases)
                    phrases.append(phrase)
                    tids.append(_NONE)
                    prefix.append(_NONE)
                prefix[i] = tid
        out.append(_IdScanner(field, phrases, tids, prefix))
    return tuple(out)


# --- the selection ---------------------------------------------------------------------------------------


class _Selector:
    """Step 2: the rules whose required groups all have a found term, less those a found term excludes.

    One big int per term, in slots of `width` bits: a rule's exclusions set its bit i in the lowest slot, and its
    j-th group sets bit i of slot j + 1 in the int of each of its terms (a rule with fewer groups has bit i preset
    in the higher slots: `pad`). Per entry: OR the ints of the found terms (one C-level reduce, no Python loop per
    term or slot), then AND the group slots, shifted down (the top slot first: below `width` bits, it clears
    what the other shifts bring down from above), less the exclusion slot. Python's big ints do the work in C.
    """

    def __init__(self, terms: int, required: Sequence[Sequence[Group]], excluded: Sequence[frozenset[int]]) -> None:
        slots = max((len(groups) for groups in required), default=0)
        self.width = width = len(required)
        masks = [0] * terms
        pad = 0
        for i, groups in enumerate(required):
            for slot in range(slots):
                bit = 1 << ((slot + 1) * width + i)
                if slot < len(groups):
                    for tid in groups[slot]:
                        masks[tid] |= bit
                else:
                    pad |= bit
            for tid in excluded[i]:
                masks[tid] |= 1 << i
        self.masks, self.pad = masks, pad
        self.shifts = tuple(slot * width for slot in range(slots, 0, -1))  # the group slots, top first
        self.all = (1 << width) - 1

    def select(self, found: Iterable[int]) -> list[int]:
        """Indexes of the selected rules, in rule order."""
        # the pad last: it reaches the top slot, and every OR costs the length of the longer int
        acc = reduce(or_, map(self.masks.__getitem__, found), 0) | self.pad
        shifts = self.shifts
        if shifts:
            selected = acc >> shifts[0]
            for shift in shifts[1:]:
                selected &= acc >> shift
        else:  # no rule needs a term (regex only): each is evaluated unless excluded
            selected = self.all
        selected &= ~acc  # less the excluded
        out: list[int] = []
        while selected:  # highest bit first: bit_length and one shift, cheaper than isolating the lowest bit
            i = selected.bit_length() - 1
            out.append(i)
            selected ^= 1 << i
        out.reverse()
        return out


# --- the rule set -----------------------------------------------------------------------------------------

# The ids of an exact rule's terms found: a set in Python, a tuple in ascending order from the C steps. The hit
# memo of a RuleSet only ever sees one kind.
_Key = frozenset[int] | tuple[int, ...]
_NO_DETAILS: Mapping[str, object] = MappingProxyType({})  # shared by reused hits, so read-only
_HIT_CACHE_SIZE = 50_000


class RuleSet:
    """The enabled rules, indexed for matching. Immutable once built (but for a memo); build a new one to reload."""

    def __init__(self, rules: Sequence[Rule], *, native: bool | None = None) -> None:
        """`native`: steps 1 and 2 in C (True), in Python (False), or in C when it is built (None)."""
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
        self._by_field = by_field
        self._field_order = {field: i for i, field in enumerate(by_field)}  # the order prepare() scans them in
        scanners = _id_scanners(by_field, ids.keys)
        text_scanner = next((sc for sc in scanners if sc.field == "text"), None)
        # What _plan() refers to: a scanner and the term table its matches read, by number. The text scanner
        # comes twice: the second time for a title scanned on its own, its matches read as title terms.
        self._tables = tuple((sc, sc.tids) for sc in scanners if sc.field != "text")
        self._fields_end = len(self._tables)  # the tables before it are other fields'
        self._text_table = self._fields_end if text_scanner is not None else -1
        if text_scanner is not None:
            self._tables += ((text_scanner, text_scanner.tids), (text_scanner, text_scanner.prefix))
        excluded = [e.excluded if e is not None else frozenset() for e in self._exact]
        self._required, self._excluded = required, excluded  # for _selector, built on first need
        # Per exact rule, its terms; None for a rule evaluated in full.
        self._terms: list[frozenset[int] | None] = [e.terms if e is not None else None for e in self._exact]
        self._native = None  # steps 1 and 2 in C, if used: scanner k of the index reads table k
        if NATIVE if native is None else native:
            tables = [
                (
                    sc.left,
                    sc.right,
                    tids,
                    sc.prefix if tids is sc.tids else (_NONE,) * len(tids),
                )  # title alone: no prefix
                for sc, tids in self._tables
            ]
            self._native = build_index(len(ids.keys), _IS_WORD_BYTE, required, excluded, self._terms, tables)
        # The hit of an exact rule depends only on the rule and the terms found: built once, then reused. Bounded;
        # dropped with the RuleSet on reload.
        self._hit_memos: list[dict[_Key, Hit]] = [{} for _ in self._active]  # per rule: terms found -> hit
        self._memoised = 0  # hits in all the memos
        self._makers = [Hit.maker(r.name, r.version, r.tags, r.severity, r.notify, r.cooldown) for r in self._active]
        self._evidence = [_Evidence.of(e) if e is not None else None for e in self._exact]

    def __len__(self) -> int:
        return len(self.rules)

    def get(self, name: str) -> Rule | None:
        return next((r for r in self.rules if r.name == name), None)

    # --- the three steps -----------------------------------------------------------------------------------

    @cached_property
    def _selector(self) -> _Selector:
        """Step 2 in Python: where the C steps are not used, and for candidates()."""
        return _Selector(len(self._keys), self._required, self._excluded)

    @cached_property
    def _scanners(self) -> tuple[_Scanner, ...]:
        """Per field, an automaton that reports offsets in characters: built on the first full evaluation."""
        keys = self._keys
        return tuple(_Scanner(field, tids, [keys[t][1] for t in tids]) for field, tids in self._by_field.items())

    def _plan(self, fields: Mapping[str, str]) -> list[tuple[int, bytes, int]]:
        """What step 1 scans: (table number in self._tables, UTF-8 text, length of the title prefix in it)."""
        plan = [
            (k, text.encode(), 0)
            for k, (sc, _) in enumerate(self._tables[: self._fields_end])
            if (text := fields.get(sc.field))
        ]
        k = self._text_table
        if k < 0:
            return plan
        data, title = fields.get("text", "").encode(), fields.get("title", "").encode()
        if data.startswith(title) and (len(data) == len(title) or not _IS_WORD_BYTE[data[len(title)]]):
            plan.append((k, data, len(title)))  # the title's terms too: see _IdScanner
            return plan
        if data:  # fields not built by prepare(): the title on its own
            plan.append((k, data, 0))
        if title:
            plan.append((k + 1, title, 0))
        return plan

    def _scan(self, fields: Mapping[str, str]) -> set[int]:
        """Step 1: ids of the terms that occur in their field, with valid boundaries."""
        found: set[int] = set()
        tables = self._tables
        for k, text, prefix_len in self._plan(fields):
            scanner, tids = tables[k]
            scanner.scan(text, found, tids, prefix_len)
        return found

    def _select(self, fields: Mapping[str, str]) -> tuple[Iterable[int], Sequence[int], Sequence[_Key | None]]:
        """Steps 1 and 2: the ids of the terms found, the selected rules, and for each of those that is an exact
        rule the ids of its terms found (its memo key), None for the others."""
        native = self._native
        if native is None:
            found = self._scan(fields)
            selected = self._selector.select(found)
            terms = self._terms
            return found, selected, [t & found if (t := terms[i]) is not None else None for i in selected]
        # no pads: the C code takes the edges of the text as boundaries
        tables = self._tables
        scans = [
            (k, tables[k][0].automaton.find_matches_as_indexes(text, overlapping=True), text, prefix_len)
            for k, text, prefix_len in self._plan(fields)
        ]
        return native.select(scans)

    def prepare(self, fields: Mapping[str, str]) -> Doc:
        """A Doc for full evaluation: every term occurrence with valid boundaries, as spans, per field."""
        doc = Doc(fields)
        doc.found = self._all_spans(fields)
        return doc

    def _all_spans(self, fields: Mapping[str, str]) -> dict[tuple[str, str], list[Span]]:
        found: dict[tuple[str, str], list[Span]] = {}
        for scanner in self._scanners:
            text = fields.get(scanner.field)
            if text:
                for tid, start, end in scanner.spans(text):
                    found.setdefault(self._keys[tid], []).append((start, end))
        return found

    def candidates(self, doc: Doc) -> list[int]:
        """Indexes of the rules the prefilter lets through for `doc`: those then decided or evaluated."""
        return self._selector.select({self._ids[key] for key in doc.found})

    def match_fields(self, fields: Mapping[str, str], only: Iterable[str] | None = None) -> list[Hit]:
        found, selected, keys = self._select(fields)
        if only is not None:
            wanted, active = set(only), self._active
            kept = [j for j, i in enumerate(selected) if active[i].name in wanted]
            selected, keys = [selected[j] for j in kept], [keys[j] for j in kept]
        doc: Doc | None = None
        hits: list[Hit] = []
        append, memos = hits.append, self._hit_memos
        for i, key in zip(selected, keys, strict=True):
            if key is not None:  # an exact rule: selected means matched, and its hit depends only on the terms
                hit = memos[i].get(key)
                append(hit if hit is not None else self._exact_hit(i, key))
                continue
            rule = self._active[i]
            if doc is None:
                doc = Doc(fields)
                keys_found = [self._keys[t] for t in found]  # in the order found, if the C steps found them
                doc.found = _Spans(
                    fields, set(keys_found), self._field_order, keys_found if self._native is not None else None
                )
            ev = Evidence()
            if rule.root.evaluate(doc, ev):
                append(self._makers[i](tuple(ev.terms), dict(ev.details)))
        return hits

    def _exact_hit(self, i: int, found: _Key) -> Hit:
        """The hit of exact rule i, its terms `found` found. Memoised."""
        if self._memoised >= _HIT_CACHE_SIZE:
            for memo in self._hit_memos:
                memo.clear()
            self._memoised = 0
        evidence = self._evidence[i]
        assert evidence is not None  # i is an exact rule
        hit = self._hit_memos[i][found] = self._makers[i](evidence.matched(found), _NO_DETAILS)
        self._memoised += 1
        return hit

    def match(self, entry: Entry, feed: Feedinfo | None = None) -> list[Hit]:
        """The hits of one entry, in rule order."""
        return self.match_fields(prepare(entry, feed))

    def match_text(self, text: str) -> list[Hit]:
        """Match a bare text, as if it were an entry's title (examples, ``rules explain --text``)."""
        return self.match(Entry(key="text", title=text, link=""))
