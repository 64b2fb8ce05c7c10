"""``amount:`` and ``power:``: conditions on the money and power figures of an entry.

The figures come from :mod:`amounts` (English and Japanese: "up to $5bn", "300億ドル", "１ＧＷ"...). Extraction
runs at most once per field and entry, memoised in ``Doc.cache``, and only when a candidate rule reaches one of
these conditions (the cheap term conditions before it in an ``all:`` usually rule the entry out first).

Money is compared in the condition's currency, converted with the rate table (units per 1 USD: the defaults in
``amounts.DEFAULT_RATES``, overridden by the ``rates:`` block of rules.yaml). An amount in a currency without a
rate is ignored. "Up to $5bn" is an upper bound; ``upper_bound: false`` makes such amounts not count.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from .amounts import DEFAULT_RATES, Amount, extract_amounts, format_amount, to_currency
from .conditions import Doc, Evidence, Term, Trace


def amounts(doc: Doc, field: str) -> list[Amount]:
    """The amounts of one field, extracted once per entry."""
    return doc.memo(("amounts", field), lambda: extract_amounts(doc.text(field)))  # type: ignore[no-any-return]


def _number(value: Decimal) -> str:
    """30000000000 -> "30,000,000,000"; 1.5 -> "1.5"."""
    return format(value.normalize(), ",f")


def _range(low: Decimal | None, high: Decimal | None, show: str) -> str:
    if low is not None and high is not None:
        return f"between {show.format(_number(low))} and {show.format(_number(high))}"
    if low is not None:
        return f">= {show.format(_number(low))}"
    if high is not None:
        return f"<= {show.format(_number(high))}"
    return "any"


@dataclass(frozen=True)
class _Measure:
    """What money and power conditions share: a range, the "up to" option, the field, the evidence."""

    low: Decimal | None  # inclusive bounds, None for open
    high: Decimal | None
    upper_bound: bool  # do "up to" / 最大 figures count?
    field: str
    line: int | None

    def value(self, a: Amount) -> Decimal | None:
        """The figure in the condition's unit, or None when the amount is of another kind."""
        raise NotImplementedError

    def show(self, a: Amount) -> str:
        return format_amount(a)

    def selected(self, doc: Doc) -> tuple[list[Amount], list[Amount]]:
        """(amounts that satisfy the condition, amounts of the right kind that do not)."""
        good: list[Amount] = []
        bad: list[Amount] = []
        for a in amounts(doc, self.field):
            v = self.value(a)
            if v is None:
                continue
            in_range = (self.low is None or v >= self.low) and (self.high is None or v <= self.high)
            (good if in_range and (self.upper_bound or not a.upper_bound) else bad).append(a)
        return good, bad

    def evaluate(self, doc: Doc, ev: Evidence) -> bool:
        good, _ = self.selected(doc)
        for a in good:
            ev.add_term(a.text)
            ev.add_detail("amounts", self.show(a))
        return bool(good)

    def explain(self, doc: Doc) -> Trace:
        good, bad = self.selected(doc)
        if good:
            why = "found " + "; ".join(self.show(a) for a in good)
        elif bad:
            why = "found only " + "; ".join(self.show(a) for a in bad) + ", outside the range"
            if not self.upper_bound and any(a.upper_bound for a in bad):
                why += " or an upper bound ('up to'), which upper_bound: false excludes"
        else:
            why = "no such figure found"
        return Trace(bool(good), self.describe(), self.line, why, kind="measure")

    def terms(self) -> Iterator[Term]:
        return iter(())

    def masks(self) -> Iterator[Term]:
        return iter(())

    def requires_literal(self) -> bool:
        return False

    def describe(self) -> str:
        raise NotImplementedError


@dataclass(frozen=True)
class AmountCondition(_Measure):
    """A money amount within [low, high] once converted to ``currency``."""

    currency: str = "USD"
    rates: Mapping[str, Decimal] = field(default_factory=lambda: DEFAULT_RATES, compare=False)  # units per 1 USD

    def value(self, a: Amount) -> Decimal | None:
        return to_currency(a, self.currency, self.rates) if a.kind == "money" else None

    def show(self, a: Amount) -> str:
        shown = format_amount(a)
        if a.currency != self.currency and (v := self.value(a)) is not None:
            shown += f" ≈ {self.currency} {_number(v.quantize(Decimal(1)))}"
        return shown

    def describe(self) -> str:
        text = "amount " + _range(self.low, self.high, self.currency + " {}")
        return text if self.upper_bound else text + " (not 'up to')"


@dataclass(frozen=True)
class PowerCondition(_Measure):
    """A power figure within [low, high] watts."""

    def value(self, a: Amount) -> Decimal | None:
        return a.value if a.kind == "power" else None

    def describe(self) -> str:
        text = "power " + _range(self.low, self.high, "{} W")
        return text if self.upper_bound else text + " (not 'up to')"
