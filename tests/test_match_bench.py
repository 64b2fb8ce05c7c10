"""bench/match.py's correctness check on a small configuration: the compiled matcher and the naive regex loop
find the same rules for every entry. No timing here: speed is the bench's business (run bench/match.py)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from watcher.rules.matcher import prepare

BENCH = Path(__file__).resolve().parent.parent / "bench" / "match.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_match", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(("rules", "entries"), [(10, 200), (100, 200)])
def test_compiled_matcher_finds_what_the_naive_loop_finds(bench: ModuleType, rules: int, entries: int) -> None:
    rule_dicts = bench.make_rules(rules, seed=3)
    docs = [prepare(e) for e in bench.make_entries(entries, seed=3)]
    hits = bench.check_same_hits(rule_dicts, docs)
    assert hits > 0, "no hit at all: the comparison would prove nothing"


def test_bench_data_is_what_it_says(bench: ModuleType) -> None:
    entries = bench.make_entries(100, seed=3)
    assert all(any("\u3040" <= c <= "\u30ff" for c in e.title + e.summary) for e in entries[1::2])
    assert 400 < sum(len(e.title) + len(e.summary) for e in entries) / len(entries) < 600
    text = "".join(e.title + e.summary for e in entries)
    assert any("\uff01" <= c <= "\uff5e" for c in text), "full-width forms"
    rules = bench.make_rules(300, seed=3)
    assert len({repr({k: v for k, v in r.items() if k != "name"}) for r in rules}) == 300
    assert {"any", "all", "none", "in"} <= {k for r in rules for k in r}
