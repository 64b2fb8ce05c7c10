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
from watcher.errors import ConfigError
from watcher.models import Entry
from watcher.rules import RuleSet
from watcher.rules.compile import RuleCompiler
from watcher.rules.conditions import Evidence
from watcher.rules.explain import explain_text
from watcher.rules.matcher import Feedinfo
from watcher.rules.measures import amounts
from watcher.rules.normalize import normalize
from watcher.yamlsrc import Source

ROOT = Path(__file__).resolve().parent.parent
CASES = YAML(typ="safe").load((Path(__file__).parent / "data" / "rule_cases.yaml").read_text(encoding="utf-8"))


def compile_one(rule: dict[str, Any], entities: dict[str, Any] | None = None, rates: Any = None) -> RuleSet:
    src = Source("<case>", "")
    compiler = RuleCompiler(src)
    compiler.read_rates({"rates": rates})
    compiler.read_entities({"entities": entities})
    rules = compiler.rules([rule])
    assert not src.issues, src.issues
    return RuleSet(rules)


@pytest.mark.parametrize(
    ("case", "text", "expect"),
    [
        pytest.param(c, text, expect, id=f"{c['rule']['name']}:{'+' if expect else '-'}:{text[:30]}")
        for c in CASES
        for expect, key in ((True, "match"), (False, "no_match"))
        for text in c.get(key, [])
    ],
)
def test_rule_cases(case: dict[str, Any], text: str, expect: bool) -> None:
    rs = compile_one(case["rule"], case.get("entities"), case.get("rates"))
    hits = rs.match_text(text)
    assert bool(hits) is expect
    # the explain trace always agrees with the matcher
    (verdict,) = explain_text(rs.rules, text).verdicts
    assert verdict.matched is expect


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


# --- the language's errors: file:line, field, and how to fix ------------------------------------------------------


def config_errors(tmp_path: Path, text: str) -> str:
    p = tmp_path / "rules.yaml"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_rules(p, {})
    return str(info.value).replace(f"{p}:", "rules.yaml:")


def test_entity_errors(tmp_path: Path) -> None:
    text = config_errors(
        tmp_path,
        """\
entities:
  anthropic: [Anthropic, Claude]
  meta:
    terms: [Meta]
    exclude: [meta-analysis, Meta]
  both: ["@anthropic", x]
  empty: []
  bad name: [x]
rules:
  - name: r
    any: ["@anthropik", {entity: metta}, "@nothing"]
""",
    )
    assert "rules.yaml:5: 'Meta' is both a term and an exclusion of entity 'meta' (remove one of them)" in text
    assert "rules.yaml:6: '@anthropic' in entity 'both': an entity cannot refer to another entity" in text
    assert "rules.yaml:7: entity 'empty' must be a non-empty list of terms" in text
    assert "rules.yaml:8: entity name 'bad name' is not valid" in text
    assert "rules.yaml:11: unknown entity 'anthropik' in any of rule 'r' (did you mean 'anthropic'?)" in text
    assert "rules.yaml:11: unknown entity 'metta' in any of rule 'r' (did you mean 'meta'?)" in text
    assert "rules.yaml:11: unknown entity 'nothing' in any of rule 'r' (known entities: anthropic, both, meta)" in text


def test_unknown_entity_without_any_defined(tmp_path: Path) -> None:
    text = config_errors(tmp_path, "rules:\n  - name: r\n    any: ['@meta']\n")
    assert "rules.yaml:3: unknown entity 'meta'" in text and "define it under entities:" in text


def test_near_amount_power_rate_errors(tmp_path: Path) -> None:
    text = config_errors(
        tmp_path,
        """\
rates:
  JPY: -1
  yen: 150
rules:
  - name: n
    near: {a: [x], within: -2, distance: 3}
  - name: m
    near: [x, y]
  - name: a
    amount: {currency: USX, min: 1e9}
  - name: b
    amount:
      min: 5e9
      max: 1e9
  - name: c
    amount: {min: lots}
  - name: p
    power: {min_wats: 1e8}
  - name: g
    near: {a: [{any: [x]}], b: [y]}
""",
    )
    assert "rules.yaml:2: rate of JPY must be a positive number" in text
    assert "rules.yaml:3: rate 'yen' is not a currency code" in text
    assert "rules.yaml:6: unknown key 'distance' in near of rule 'n'" in text
    assert "rules.yaml:6: 'near' in rule 'n' has no 'b'" in text
    assert "rules.yaml:6: 'within' of near in rule 'n' must be a whole number >= 0" in text
    assert "rules.yaml:8: 'near' in rule 'm' must be a mapping" in text
    assert "rules.yaml:10: currency 'USX' of amount in rule 'a' has no exchange rate (did you mean 'USD'?)" in text
    assert "rules.yaml:14: 'max' of amount in rule 'b' is below 'min'" in text
    assert "rules.yaml:16: 'min' of amount in rule 'c' must be a number >= 0" in text
    assert "rules.yaml:18: unknown key 'min_wats' in power in rule 'p' (did you mean 'min_watts'?)" in text
    assert "rules.yaml:20: item 1 of group a of near in rule 'g' is not a term" in text


def test_entity_and_rates_change_the_rule_version(tmp_path: Path) -> None:
    def version(entities: str, rates: str = "") -> str:
        p = tmp_path / "rules.yaml"
        p.write_text(f"{rates}entities:\n  e: [{entities}]\nrules:\n  - name: r\n    any: ['@e']\n    amount: {{}}\n")
        return load_rules(p, {}).rules.rules[0].version

    assert version("a") == version("a") != version("a, b")
    assert version("a") != version("a", "rates: {JPY: 100}\n")


# --- what a hit carries ---------------------------------------------------------------------------------------


def test_hit_details_carry_amounts_and_near_spans() -> None:
    rs = compile_one(
        {
            "name": "r",
            "near": {"a": ["claude"], "b": ["azure"], "within": 5},
            "amount": {"currency": "USD", "min": 1e9},
        }
    )
    (hit,) = rs.match_text("Claude on Azure: a 4兆5000億円 deal, up to $30 billion")
    assert hit.details["amounts"] == [
        "JPY 4,500,000,000,000 ≈ USD 30,000,000,000",
        "USD 30,000,000,000 (up to)",
    ]
    assert hit.details["near"] == ['"claude" … "azure" (1 word apart)']
    assert hit.matched == ("claude", "azure", "4兆5000億円", "$30 billion")


def test_amounts_are_extracted_once_and_only_for_candidates() -> None:
    rules = [
        {"name": f"r{i}", "all": [word, {"amount": {"currency": "USD", "min": 1e9}}]}
        for i, word in enumerate(["cloud", "compute", "gpu"])
    ]
    src = Source("<case>", "")
    rs = RuleSet(RuleCompiler(src).rules(rules))
    doc = rs.prepare({"text": "cloud compute for $5bn"})
    assert [rs.rules[i].name for i in rs.candidates(doc)] == ["r0", "r1"]
    assert ("amounts", "text") not in doc.cache
    for i in rs.candidates(doc):
        assert rs.rules[i].root.evaluate(doc, Evidence())
    extracted = doc.cache[("amounts", "text")]
    assert amounts(doc, "text") is extracted  # the second rule reused the first one's extraction
    # an entry none of whose terms occur never pays for the extraction
    doc = rs.prepare({"text": "$5bn for a stadium"})
    assert rs.candidates(doc) == [] and ("amounts", "text") not in doc.cache


def test_explain_names_the_first_failing_condition() -> None:
    rs = compile_one({"name": "r", "all": [{"any": ["claude"]}, {"any": ["foundry", "copilot"]}], "none": ["x"]})
    (v,) = explain_text(rs.rules, "Claude writes poems").verdicts
    assert not v.matched and v.failure is not None
    assert v.failure.what == 'any of ["foundry", "copilot"]' and v.failure.why == "none of them found"
    (v,) = explain_text(rs.rules, "Claude in Foundry, x").verdicts
    assert v.failure is not None and v.failure.why == 'excluded by "x"'


# --- properties -------------------------------------------------------------------------------------------------

LATIN = st.sampled_from(["alpha", "beta", "gamma", "delta", "gb300", "4"])
CJK = st.sampled_from(["演", "算", "の", "デ", "タ"])
SEPARATORS = st.sampled_from([" ", ", ", " - ", "、", "。", " (", ") "])


@st.composite
def token_texts(draw: st.DrawFn) -> tuple[str, list[str]]:
    """A text built from known words (so the expected word positions are known) and its list of words."""
    words = draw(st.lists(st.one_of(LATIN, CJK, st.sampled_from(["anthropic", "azure"])), min_size=1, max_size=25))
    out = ""
    for i, w in enumerate(words):
        if i:
            cjk_pair = len(w) == 1 and not w.isascii() and len(words[i - 1]) == 1 and not words[i - 1].isascii()
            # two CJK characters may touch; anything else needs a separator to stay two words
            out += draw(st.sampled_from(["", "、"])) if cjk_pair else draw(SEPARATORS)
        out += w
    return out, words


def near_rule(a: str, b: str, within: int) -> RuleSet:
    return compile_one({"name": "n", "near": {"a": [a], "b": [b], "within": within}})


@settings(max_examples=300, deadline=None)
@given(token_texts())
def test_near_agrees_with_word_positions(case: tuple[str, list[str]]) -> None:
    text, words = case
    xs = [i for i, w in enumerate(words) if w == "anthropic"]
    ys = [i for i, w in enumerate(words) if w == "azure"]
    if not xs or not ys:
        assert not near_rule("anthropic", "azure", 100).match_text(text)
        return
    gap = min(abs(i - j) - 1 for i in xs for j in ys)  # words strictly between the closest pair
    assert near_rule("anthropic", "azure", gap).match_text(text), text
    if gap > 0:
        assert not near_rule("anthropic", "azure", gap - 1).match_text(text), text


@settings(max_examples=200, deadline=None)
@given(token_texts(), st.integers(min_value=0, max_value=12))
def test_near_is_symmetric_and_monotone(case: tuple[str, list[str]], within: int) -> None:
    text, _ = case
    ab = bool(near_rule("anthropic", "azure", within).match_text(text))
    assert ab is bool(near_rule("azure", "anthropic", within).match_text(text))
    if ab:
        assert near_rule("anthropic", "azure", within + 1).match_text(text)


ENTITY_TERMS = ["Meta", "Meta Platforms", "メタ", "Llama"]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.sampled_from([*ENTITY_TERMS, "metadata", "meta-analysis", "metaverse", "news", "が"]), max_size=8),
    st.sampled_from([" ", ", ", ""]),
    st.lists(st.sampled_from(ENTITY_TERMS), min_size=1, max_size=4, unique=True),
)
def test_entity_matches_exactly_when_one_of_its_terms_does(parts: list[str], sep: str, terms: list[str]) -> None:
    text = sep.join(parts)
    by_entity = compile_one({"name": "e", "any": ["@e"]}, entities={"e": terms})
    by_terms = compile_one({"name": "t", "any": terms})
    assert bool(by_entity.match_text(text)) is bool(by_terms.match_text(text))
    # an exclusion can only take matches away
    with_exclusion = compile_one(
        {"name": "x", "any": ["@e"]}, entities={"e": {"terms": terms, "exclude": ["meta-analysis"]}}
    )
    if with_exclusion.match_text(text):
        assert by_entity.match_text(text)


@settings(max_examples=200, deadline=None)
@given(
    st.integers(min_value=1, max_value=999), st.sampled_from(["${} billion", "US${}bn", "{}0億ドル", "USD {} billion"])
)
def test_amount_threshold_is_exact(n: int, form: str) -> None:
    rs = compile_one({"name": "a", "amount": {"currency": "USD", "min": 100_000_000_000}})
    assert bool(rs.match_text("cloud deal of " + form.format(n))) is (n >= 100)


def test_explain_says_why_each_branch_of_a_failed_any_failed() -> None:
    rs = compile_one(
        {
            "name": "r",
            "any": [
                {"all": ["claude", {"amount": {"currency": "USD", "min": 1e9}}]},
                {"near": {"a": ["claude"], "b": ["foundry"], "within": 1}},
            ],
        }
    )
    (v,) = explain_text(rs.rules, "Claude, a $5 million deal, far away from any Foundry").verdicts
    assert v.failure is not None and v.failure.kind == "any"
    assert v.failure.why.startswith("no branch held: ")
    assert "amount >= USD 1,000,000,000: found only USD 5,000,000, outside the range" in v.failure.why
    assert 'closest pair too far: "claude" … "foundry" (8 words apart)' in v.failure.why


def test_shipped_compute_rule_reads_anthropics_own_feeds_through_the_feed_field() -> None:
    rules = load_rules(ROOT / "rules.yaml", {}).rules
    entry = Entry(key="k", title="Expanding our use of Google Cloud TPUs and Services", link="")
    own = [h.rule for h in rules.match(entry, Feedinfo("anthropic-news", ("anthropic", "mirror")))]
    other = [h.rule for h in rules.match(entry, Feedinfo("techcrunch-ai", ("press",)))]
    assert "compute-deals" in own and "compute-deals" not in other
