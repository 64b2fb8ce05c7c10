"""Why a rule matches or not: the library behind ``watcher rules explain`` and ``watcher rules test``.

Both run the very matcher the daemon runs (``RuleSet.prepare`` then each rule's ``evaluate``), and add the
slow ``explain`` trace only to say why, so what they report is what the daemon would do.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..models import Entry
from .amounts import Amount, format_amount
from .conditions import Evidence, Trace
from .matcher import RuleSet, prepare
from .measures import amounts
from .model import Example, Rule


@dataclass(frozen=True)
class Verdict:
    """One rule on one text."""

    rule: Rule
    matched: bool
    terms: tuple[str, ...]  # what made it match (terms as written in the rule, figures as found)
    details: Mapping[str, list[Any]]  # amounts and near spans, as stored with a hit
    trace: Trace  # every condition's outcome
    failure: Trace | None  # the first condition that failed, when it did not match


@dataclass(frozen=True)
class Explanation:
    """Every rule on one text, and the figures found in it."""

    verdicts: tuple[Verdict, ...]
    amounts: tuple[Amount, ...]  # money and power figures in the text field, whether a rule used them or not

    @property
    def figures(self) -> list[str]:
        return [format_amount(a) for a in self.amounts]


def _enabled(rules: Sequence[Rule]) -> list[Rule]:
    """The rules as if all were enabled: explain and test look at disabled rules too."""
    return [r if r.enabled else dataclasses.replace(r, enabled=True) for r in rules]


def explain_fields(rules: Sequence[Rule], fields: dict[str, str]) -> Explanation:
    active = _enabled(rules)
    doc = RuleSet(active).prepare(fields)
    verdicts = []
    for rule in active:
        ev = Evidence()
        ok = rule.root.evaluate(doc, ev)
        trace = rule.root.explain(doc)
        assert trace.ok == ok, f"explain and evaluate disagree on rule {rule.name}"
        verdicts.append(
            Verdict(
                rule=rule,
                matched=ok,
                terms=tuple(ev.terms) if ok else (),
                details=dict(ev.details) if ok else {},
                trace=trace,
                failure=trace.first_failure(),
            )
        )
    return Explanation(tuple(verdicts), tuple(amounts(doc, "text")))


def explain_entry(rules: Sequence[Rule], entry: Entry, feed: Any = None) -> Explanation:
    """Explain a stored entry with all its fields (`feed` is a matcher.Feedinfo or None)."""
    return explain_fields(rules, prepare(entry, feed))


def explain_text(rules: Sequence[Rule], text: str) -> Explanation:
    """Explain a bare text, read as an entry's title (as ``RuleSet.match_text`` and the examples do)."""
    return explain_entry(rules, Entry(key="text", title=text, link=""))


@dataclass(frozen=True)
class ExampleFailure:
    """An example whose outcome is not the documented one."""

    rule: Rule
    example: Example
    reason: str  # the first failing condition (should match) or what matched (should not match)


def check_examples(rules: Sequence[Rule]) -> tuple[int, list[ExampleFailure]]:
    """Run every rule's examples (disabled rules too); return (examples run, failures)."""
    run = 0
    failures: list[ExampleFailure] = []
    for rule in _enabled(rules):
        rs = RuleSet([rule])
        for ex in rule.examples:
            run += 1
            if bool(rs.match_text(ex.text)) is ex.should_match:
                continue
            (verdict,) = explain_text([rule], ex.text).verdicts
            failures.append(ExampleFailure(rule, ex, describe_outcome(verdict)))
    return run, failures


def describe_outcome(v: Verdict) -> str:
    """One line: what made a rule match, or where it failed."""
    if v.matched:
        parts = ["matched " + ", ".join(f'"{t}"' for t in v.terms)] if v.terms else ["matched"]
        for kind, values in v.details.items():
            parts.append(f"{kind}: " + "; ".join(str(x) for x in values))
        return "; ".join(parts)
    return v.failure.brief() if v.failure is not None else "did not match"
