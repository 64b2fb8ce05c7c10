# Types of the C extension watcher/rules/_select.c (optional: see setup.py).
from collections.abc import Sequence

from _typeshed import ReadableBuffer as Buffer

class Index:
    def __init__(
        self,
        nterms: int,
        word: Buffer,
        memberships: Buffer,
        members: Buffer,
        exclusion_offsets: Buffer,
        exclusions: Buffer,
        rule_groups: Buffer,
        exact: Buffer,
        exact_offsets: Buffer,
        exact_terms: Buffer,
        scanners: Sequence[tuple[Buffer, Buffer, Buffer, Buffer]],
    ) -> None: ...
    def select(
        self, scans: Sequence[tuple[int, Sequence[tuple[int, int, int]], Buffer, int]]
    ) -> tuple[list[int], list[int], list[tuple[int, ...] | None]]: ...
