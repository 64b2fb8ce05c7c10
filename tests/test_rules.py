"""The rule language: the table in data/rule_cases.yaml, normalisation properties, the matcher's prefilter."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from watcher.config import load_rules
from watcher.models import Entry
from watcher.rules import RuleSet
from watcher.rules.compile import RuleCompiler
from watcher.rules.normalize import normalize
from watcher.yamlsrc import Source

ROOT = Path(__file__).resolve().parent.parent
CASES = YAML(typ="safe").load((Path(__file__).parent / "data" / "rule_cases.yaml").read_text(encoding="utf-8"))


def compile_one(rule: dict[str, Any]) -> RuleSet:
    src = Source("<case>", "")
    rules = RuleCompiler(src).rules([rule])
    assert not src.issues, src.issues
    return RuleSet(rules)


@pytest.mark.parametrize(
    ("rule", "text", "expect"),
    [
        pytest.param(c["rule"], text, expect, id=f"{c['rule']['name']}:{'+' if expect else '-'}:{text[:30]}")
        for c in CASES
        for expect, key in ((True, "match"), (False, "no_match"))
        for text in c.get(key, [])
    ],
)
def test_rule_cases(rule: dict[str, Any], text: str, expect: bool) -> None:
    hits = compile_one(rule).match_text(text)
    assert bool(hits) is expect


def test_hit_records_matched_terms_as_written() -> None:
    rs = compile_one({"name": "r", "all": [{"any": ["Nvidia", "AMD"]}, {"any": ["Deal"]}], "tags": ["rival-deals"]})
    (hit,) = rs.match_text("NVIDIA strikes a deal")
    assert hit.matched == ("Nvidia", "Deal") and hit.tags == ("rival-deals",) and len(hit.rule_version) == 12


def test_fields_are_separate() -> None:
    rs = compile_one({"name": "r", "any": [{"in": "summary", "any": ["gigawatt"]}]})
    assert rs.match(Entry(key="k", title="x", link="", summary="a gigawatt campus"))
    assert not rs.match(Entry(key="k", title="a gigawatt campus", link=""))


def test_prefilter_skips_rules_without_found_terms() -> None:
    rs = compile_one({"name": "r", "all": ["alpha", "beta"]})
    doc = rs.prepare({"text": "gamma delta"})
    assert rs.candidates(doc) == []
    only_none = compile_one({"name": "n", "none": ["alpha"]})
    assert only_none.candidates(only_none.prepare({"text": "gamma"})) == [0]


def test_rule_version_changes_with_logic_not_description() -> None:
    a = compile_one({"name": "r", "any": ["x"], "description": "one"}).rules[0].version
    b = compile_one({"name": "r", "any": ["x"], "description": "two"}).rules[0].version
    c = compile_one({"name": "r", "any": ["y"]}).rules[0].version
    assert a == b != c


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_normalize_is_idempotent(s: str) -> None:
    assert normalize(normalize(s)) == normalize(s)


@settings(max_examples=200, deadline=None)
@given(
    st.from_regex(re.compile(r"[A-Za-z]{3,12}", re.ASCII), fullmatch=True), st.sampled_from(["", " ", "が", "、", "."])
)
def test_fullwidth_and_case_variants_match(word: str, after: str) -> None:
    rs = compile_one({"name": "r", "any": [word]})
    fullwidth = "".join(chr(ord(c) + 0xFEE0) for c in word.upper())
    for text in (word.upper(), word.lower(), fullwidth):
        assert rs.match_text(f"news {text}{after}"), text


@pytest.mark.parametrize("rule", load_rules(ROOT / "rules.yaml", {}).rules.rules, ids=lambda r: r.name)
def test_shipped_rule_examples(rule: Any) -> None:
    rs = RuleSet([rule])
    for ex in rule.examples:
        assert bool(rs.match_text(ex.text)) is ex.should_match, f"rules.yaml:{ex.line}: {ex.text}"
