"""The matcher's shortcuts against the plain evaluation of each rule's condition tree.

RuleSet.match_fields decides most rules from the set of term ids found (bitsets per required group, exclusions,
evidence read from the set, hits reused); a rule evaluated in full with ``rule.root.evaluate`` must give the very
same hits: same rules, same matched terms in the same order, same details.
"""

from __future__ import annotations

import shutil
import sysconfig
from array import array
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from watcher.models import Entry
from watcher.rules import RuleSet
from watcher.rules.compile import RuleCompiler
from watcher.rules.conditions import Evidence
from watcher.rules.matcher import prepare
from watcher.rules.native import NATIVE
from watcher.yamlsrc import Source

CASES = YAML(typ="safe").load((Path(__file__).parent / "data" / "rule_cases.yaml").read_text(encoding="utf-8"))

HitView = tuple[str, tuple[str, ...], dict[str, Any]]


# Steps 1 and 2 of RuleSet.match_fields run in C when the extension is built, else in Python: every test that
# compares the matcher with the full evaluation runs on both.
IMPLS = (True, False) if NATIVE else (False,)
NO_C = "the C extension is not built here: test_the_c_steps_are_built_wherever_a_c_compiler_is says if it should be"


@pytest.fixture(params=[pytest.param(True, id="c", marks=pytest.mark.skipif(not NATIVE, reason=NO_C)), False])
def native(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


def compile_all(
    rules: list[dict[str, Any]], entities: Any = None, rates: Any = None, native: bool | None = None
) -> RuleSet:
    src = Source("<test>", "")
    compiler = RuleCompiler(src)
    compiler.read_rates({"rates": rates})
    compiler.read_entities({"entities": entities})
    compiled = compiler.rules(rules)
    assert not src.issues, src.issues
    return RuleSet(compiled, native=native)


def reference(rs: RuleSet, fields: dict[str, str]) -> list[HitView]:
    """Every enabled rule evaluated in full, in order, on the prefilter's Doc."""
    doc = rs.prepare(fields)
    out: list[HitView] = []
    for rule in rs.rules:
        ev = Evidence()
        if rule.enabled and rule.root.evaluate(doc, ev):
            out.append((rule.name, tuple(ev.terms), dict(ev.details)))
    return out


def fast(rs: RuleSet, fields: dict[str, str]) -> list[HitView]:
    return [(h.rule, h.matched, dict(h.details)) for h in rs.match_fields(fields)]


def test_rule_case_table_gives_the_same_hits_both_ways(native: bool) -> None:
    texts = [t for c in CASES for key in ("match", "no_match") for t in c.get(key, [])]
    # the cases that need no entities or rates, all in one rule set (rules interfere only through the matcher)
    plain = [c for c in CASES if not c.get("entities") and not c.get("rates")]
    together = compile_all([c["rule"] for c in plain], native=native)
    assert len(together.rules) == len(plain) and texts
    for text in texts:
        fields = prepare(Entry(key="k", title=text, link=""))
        assert fast(together, fields) == reference(together, fields), text
    # every case with its own entities and rates, on every text of the table
    for case in CASES:
        rs = compile_all([case["rule"]], case.get("entities"), case.get("rates"), native)
        for text in texts:
            fields = prepare(Entry(key="k", title=text, link=""))
            assert fast(rs, fields) == reference(rs, fields), (case["rule"]["name"], text)


def test_evidence_follows_evaluation_order_and_drops_repeats(native: bool) -> None:
    rs = compile_all(
        [
            {"name": "r", "all": [{"any": ["Deal", "Azure"]}, {"any": ["NVIDIA", "deal"]}], "none": ["gaming"]},
            {"name": "t", "any": [{"in": "title", "any": ["Azure"]}, "Azure"]},  # same term, two fields
        ],
        native=native,
    )
    fields = prepare(Entry(key="k", title="Azure deal", link="", summary="nvidia"))
    assert fast(rs, fields) == reference(rs, fields)
    assert fast(rs, fields) == [("r", ("Deal", "Azure", "NVIDIA", "deal"), {}), ("t", ("Azure",), {})]


SHAPES = [
    {"any": [{"all": ["nvidia", {"regex": "dea."}]}, "azure"]},  # either branch alone can select the rule
    {"all": [{"any": ["nvidia", {"regex": "^az"}]}, "deal"]},  # the regex branch needs no term
    {"all": [{"none": ["gaming"]}, "deal"]},
    {"none": [{"any": ["gaming", {"all": ["nvidia", "geforce"]}]}]},
    {"regex": "gw\\b"},
    {"any": [{"in": "title", "all": ["azure", {"regex": "deal$"}]}, {"in": "summary", "any": ["nvidia"]}]},
]
SHAPE_TEXTS = [
    ("azure news", ""), ("nvidia deal", ""), ("azure deal", "nvidia"), ("nvidia geforce deal", "gaming"),
    ("", "1 gw"), ("deal", "azure"), ("azure big deal", "x"),
]  # fmt: skip


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_rules_that_need_full_evaluation_are_selected_whenever_they_can_match(
    shape: dict[str, Any], native: bool
) -> None:
    rs = compile_all([{"name": "r", **shape}], native=native)
    for title, summary in SHAPE_TEXTS:
        fields = prepare(Entry(key="k", title=title, link="", summary=summary))
        assert fast(rs, fields) == reference(rs, fields), (title, summary)


def test_reused_hits_are_equal_and_read_only(native: bool) -> None:
    rs = compile_all([{"name": "r", "any": ["nvidia"]}], native=native)
    (a,) = rs.match_text("Nvidia one")
    (b,) = rs.match_text("NVIDIA two")
    assert a == b and a.details == {}
    with pytest.raises(TypeError):
        a.details["x"] = 1  # type: ignore[index]


def test_disabled_rules_never_match_and_indexes_stay_aligned(native: bool) -> None:
    rs = compile_all(
        [
            {"name": "off", "any": ["nvidia"], "enabled": False},
            {"name": "on", "all": ["nvidia", "deal"]},
            {"name": "re", "regex": "dea."},
        ],
        native=native,
    )
    assert [h.rule for h in rs.match_text("Nvidia deal")] == ["on", "re"]


def test_spans_are_in_characters_whatever_the_script() -> None:
    rs = compile_all([{"name": "r", "any": ["nvidia", "データセンター"]}])
    doc = rs.prepare({"text": "😀nvidiaが新データセンター"})
    assert doc.found == {("text", "nvidia"): [(1, 7)], ("text", "データセンター"): [(9, 16)]}


# --- random rule trees over a small vocabulary --------------------------------------------------------------

WORDS = ["nvidia", "Azure", "meta", "data center", "データセンター", "演算", "GW", "オープンAI", "x"]
NOISE = ["metadata", "nvidiafan", "が", "、", "の", " ", "Meta's", "ＧＷ", "datacenter", "演算能力", "1gw", "ax"]

term = st.sampled_from(WORDS)
regex = st.sampled_from([{"regex": "dat.? ?cent"}, {"regex": "^nv"}, {"regex": "zzz"}])


def _condition(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    items = st.lists(children, min_size=1, max_size=4)
    keyed = st.sampled_from(["any", "all", "none"]).flatmap(lambda k: items.map(lambda xs: {k: xs}))
    return st.one_of(keyed, keyed.map(lambda d: {**d, "in": "title"}))


tree = st.recursive(st.one_of(term, regex), _condition, max_leaves=10)


def _rule(i: int, node: Any) -> dict[str, Any]:
    if isinstance(node, str):
        node = {"any": [node]}
    return {"name": f"r{i}", **node}


texts = st.lists(st.sampled_from(WORDS + NOISE), max_size=12).map(" ".join) | st.lists(
    st.sampled_from(WORDS + NOISE), max_size=12
).map("".join)


@settings(max_examples=300, deadline=None)
@given(st.lists(tree, min_size=1, max_size=6), st.lists(st.tuples(texts, texts), min_size=1, max_size=4))
def test_random_rules_give_the_same_hits_both_ways(nodes: list[Any], docs: list[tuple[str, str]]) -> None:
    for native in IMPLS:
        rs = compile_all([_rule(i, n) for i, n in enumerate(nodes)], native=native)
        for title, summary in docs:
            fields = prepare(Entry(key="k", title=title, link="", summary=summary))
            assert fast(rs, fields) == reference(rs, fields), native


# An entity's evidence lists its terms in the order they occur: terms that overlap, end together ("center",
# "data center") or sit in the title and the summary at once.
OVERLAPPING = [
    "data",
    "data center",
    "center",
    "center stage",
    "データ",
    "データセンター",
    "センター",
    "meta",
    "meta data",
]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.sampled_from(OVERLAPPING), min_size=1, max_size=6, unique=True),
    st.sampled_from([None, "title", "summary"]),
    st.lists(st.tuples(texts, texts), min_size=1, max_size=3),
    st.lists(st.sampled_from(OVERLAPPING + NOISE), max_size=8).map(" ".join),
)
def test_entity_evidence_follows_the_order_terms_occur_in(
    terms: list[str], field: str | None, docs: list[tuple[str, str]], extra: str
) -> None:
    ref: dict[str, Any] = {"entity": "e"} if field is None else {"entity": "e", "in": field}
    rules = [{"name": "ent", "any": [ref]}, {"name": "also", "all": [ref, {"any": ["data", "センター"]}]}]
    for native in IMPLS:
        rs = compile_all(rules, entities={"e": {"terms": terms, "exclude": ["metadata"]}}, native=native)
        for title, summary in [*docs, (extra, extra)]:
            fields = prepare(Entry(key="k", title=title, link="", summary=summary))
            assert fast(rs, fields) == reference(rs, fields), native


@pytest.mark.parametrize(
    ("title", "text"),
    [
        ("nvidia deal", "nvidia deal \n azure"),  # as prepare() builds it: title terms read from the text's scan
        ("nvidia deal", "other news"),  # not a prefix: the title is scanned on its own
        ("nvidia dea", "nvidia deal"),  # a prefix, but the text goes on inside a word: "dea" is no title term there
        ("nvidia", ""),
        ("", "nvidia azure"),
    ],
)
def test_title_terms_are_found_whatever_the_fields_hold(title: str, text: str, native: bool) -> None:
    rs = compile_all(
        [
            {"name": "t", "in": "title", "any": ["nvidia", "dea", "deal"]},
            {"name": "only-title", "in": "title", "any": ["azure"]},
            {"name": "x", "any": ["nvidia", "azure"]},
        ],
        native=native,
    )
    fields = {"title": title, "text": text}
    assert fast(rs, fields) == reference(rs, fields)


def test_hit_maker_builds_the_hit_the_constructor_builds() -> None:
    """The matcher builds hits with Hit.maker, which fills __dict__ directly: it must stay equivalent to Hit(...)
    (no __slots__, no __post_init__ to skip) and the result must stay frozen."""
    import dataclasses

    from watcher.models import Hit

    assert "__slots__" not in vars(Hit) and not hasattr(Hit, "__post_init__")
    make = Hit.maker("r", "v1", ("azure-supply",), "urgent", ("slack",), 3600.0)
    hit = make(("Azure", "1GW"), {"power": [1e9]})
    assert hit == Hit(
        rule="r",
        rule_version="v1",
        tags=("azure-supply",),
        severity="urgent",
        notify=("slack",),
        matched=("Azure", "1GW"),
        details={"power": [1e9]},
        cooldown=3600.0,
    )
    assert {f.name for f in dataclasses.fields(Hit)} == set(vars(hit))  # every field, nothing more
    with pytest.raises(dataclasses.FrozenInstanceError):
        hit.rule = "other"  # type: ignore[misc]


# --- the C steps ------------------------------------------------------------------------------------------


def test_the_c_steps_are_built_wherever_a_c_compiler_is() -> None:
    """setup.py builds watcher/rules/_select.c where it can and goes on without it where it cannot: a machine with
    a C compiler must get it (else the matcher silently runs ~1.4x slower)."""
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(cc) is None:
        pytest.skip(f"no C compiler ({cc}) here: the matcher runs its Python steps, the same results, slower")
    assert NATIVE, (
        f"{cc} is here but watcher.rules._select is not built: reinstall (pip install -e .) and read the build's"
        " output; Python's headers are needed too (Debian: python3-dev)"
    )


def test_an_all_with_more_groups_than_the_c_masks_hold_is_evaluated_in_full(native: bool) -> None:
    words = [f"w{i}" for i in range(70)]
    rs = compile_all([{"name": "many", "all": [{"any": [w]} for w in words]}], native=native)
    for text in (" ".join(words), " ".join(words[:-1]), " ".join(words[1:]), " ".join(words[:64])):
        fields = prepare(Entry(key="k", title=text, link=""))
        assert fast(rs, fields) == reference(rs, fields), text
    assert [h.rule for h in rs.match_text(" ".join(reversed(words)))] == ["many"]


def test_only_keeps_the_named_rules_in_order(native: bool) -> None:
    rs = compile_all(
        [{"name": "a", "any": ["nvidia"]}, {"name": "b", "regex": "dea."}, {"name": "c", "any": ["deal"]}],
        native=native,
    )
    fields = prepare(Entry(key="k", title="nvidia deal", link=""))
    assert [h.rule for h in rs.match_fields(fields)] == ["a", "b", "c"]
    assert [h.rule for h in rs.match_fields(fields, only=["c", "b"])] == ["b", "c"]


@pytest.mark.skipif(not NATIVE, reason=NO_C)
def test_the_c_steps_refuse_what_does_not_fit_their_tables() -> None:
    """The C code indexes its tables with what it is given: anything out of range is an error, never a read
    outside a table, and the index still works afterwards."""
    from watcher.rules import _select

    rs = compile_all([{"name": "r", "all": ["nvidia", "deal"]}], native=True)
    index = rs._native
    assert index is not None
    text = b"nvidia deal"
    good = [(0, [(0, 0, 6), (1, 7, 11)], text, 0)]
    found, rules, keys = index.select(good)
    assert rules == [0] and keys == [(0, 1)] and sorted(found) == [0, 1]
    bad: list[tuple[Any, type[Exception]]] = [
        ([(9, [], text, 0)], IndexError),  # no such scanner
        ([(0, [(99, 0, 6)], text, 0)], ValueError),  # no such pattern
        ([(0, [(0, 6, 0)], text, 0)], ValueError),  # ends before it starts
        ([(0, [(0, 0, 99)], text, 0)], ValueError),  # ends after the text
        ([(0, [(0, -1, 6)], text, 0)], ValueError),
        ([(0, [("0", 0, 6)], text, 0)], TypeError),
        ([(0, [[0, 0, 6]], text, 0)], TypeError),
        ([(0, [(0, 0)], text, 0)], TypeError),
        ([(0, None, text, 0)], TypeError),
        ([(0, [], "text", 0)], TypeError),  # bytes only
    ]
    for scans, error in bad:
        with pytest.raises(error):
            index.select(scans)
    assert index.select(good) == (found, rules, keys)

    def tables(**change: Any) -> dict[str, Any]:
        i32 = lambda *v: array("i", v).tobytes()  # noqa: E731
        ok = dict(
            nterms=2, word=bytes(256), memberships=i32(0, 1, 2), members=i32(0 << 6 | 0, 0 << 6 | 1),
            exclusion_offsets=i32(0, 0, 0), exclusions=i32(), rule_groups=i32(2), exact=b"\x01",
            exact_offsets=i32(0, 2), exact_terms=i32(0, 1), scanners=[(b"\0\0", b"\0\0", i32(0, 1), i32(-1, -1))],
        )  # fmt: skip
        return ok | change

    assert _select.Index(**tables()).select([(0, [(1, 0, 1), (0, 1, 2)], b"ab", 0)])[1:] == ([0], [(0, 1)])
    for change in [
        {"word": bytes(255)},
        {"memberships": array("i", [0, 1, 3]).tobytes()},  # past the end of members
        {"memberships": array("i", [0, 2, 1]).tobytes()},  # decreasing
        {"members": array("i", [0, 2]).tobytes()},  # slot 2 of a rule with 2 groups
        {"members": array("i", [0, 1 << 6]).tobytes()},  # rule 1 of 1
        {"rule_groups": array("i", [65]).tobytes()},
        {"exclusions": array("i", [1]).tobytes(), "exclusion_offsets": array("i", [0, 1, 1]).tobytes()},
        {"exact_terms": array("i", [0, 2]).tobytes()},
        {"exact": b""},
        {"scanners": [(b"\0\0", b"\0", array("i", [0, 1]).tobytes(), array("i", [-1, -1]).tobytes())]},
        {"scanners": [(b"\0\0", b"\0\0", array("i", [0, 2]).tobytes(), array("i", [-1, -1]).tobytes())]},
        {"members": b"\0\0\0"},  # not a whole number of int32s
    ]:
        with pytest.raises(ValueError):
            _select.Index(**tables(**change))
