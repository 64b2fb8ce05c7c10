"""The C steps of the matcher (_select.c, an optional extension: see setup.py) and the tables they run on.

matcher.py describes steps 1 and 2 and runs them in Python; here its rule and scanner tables are packed as flat
int32 arrays for the C index, which gives the same results (tests/test_matcher.py runs both).
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Sequence
from itertools import chain

try:
    from . import _select
except ImportError:  # built without a C compiler: matcher.py runs the same steps in Python
    _select = None  # type: ignore[assignment]

NATIVE = _select is not None  # RuleSet runs steps 1 and 2 in C by default
MAX_GROUPS = 64  # groups a rule may require in the C index: the bits of its mask (as in _select.c)

# per field scanner: needs a boundary before each pattern, after it, pattern -> term id, -> title term id (-1: none)
ScannerTables = tuple[Sequence[bool], Sequence[bool], Sequence[int], Sequence[int]]


def build_index(
    terms: int,
    word: Sequence[bool],
    required: Sequence[Sequence[frozenset[int]]],
    excluded: Sequence[frozenset[int]],
    exact: Sequence[frozenset[int] | None],
    scanners: Sequence[ScannerTables],
) -> _select.Index:
    """The C index for a rule set: per rule its required groups (sets of term ids) and excluded terms, its terms
    if it is decided by them (an exact rule) else None; `word`, byte -> is a word byte. An exact rule with more
    than MAX_GROUPS groups (hardly written by hand) is selected on its first ones and evaluated in full."""
    if _select is None:
        raise RuntimeError("the matcher's C extension (watcher.rules._select) is not built")
    groups_of: list[list[int]] = [[] for _ in range(terms)]  # term -> its groups, as rule << 6 | slot
    excludes: list[list[int]] = [[] for _ in range(terms)]  # term -> the rules it excludes
    for rule, groups in enumerate(required):
        for slot, group in enumerate(groups[:MAX_GROUPS]):
            for tid in group:
                groups_of[tid].append(rule << 6 | slot)
        for tid in excluded[rule]:
            excludes[tid].append(rule)
    decided = [t is not None and len(groups) <= MAX_GROUPS for t, groups in zip(exact, required, strict=True)]
    exact_terms = [sorted(t) if t is not None and ok else [] for t, ok in zip(exact, decided, strict=True)]
    return _select.Index(
        nterms=terms,
        word=bytes(word),
        memberships=_int32s(_offsets(groups_of)),
        members=_int32s(chain.from_iterable(groups_of)),
        exclusion_offsets=_int32s(_offsets(excludes)),
        exclusions=_int32s(chain.from_iterable(excludes)),
        rule_groups=_int32s(min(len(groups), MAX_GROUPS) for groups in required),
        exact=bytes(decided),
        exact_offsets=_int32s(_offsets(exact_terms)),
        exact_terms=_int32s(chain.from_iterable(exact_terms)),
        scanners=[
            (bytes(left), bytes(right), _int32s(tids), _int32s(prefix)) for left, right, tids, prefix in scanners
        ],
    )


def _int32s(values: Iterable[int]) -> bytes:
    return array("i", values).tobytes()


def _offsets(lists: Sequence[Sequence[int]]) -> list[int]:
    """Where each list starts in their concatenation, and where the last one ends."""
    out = [0]
    for items in lists:
        out.append(out[-1] + len(items))
    return out
