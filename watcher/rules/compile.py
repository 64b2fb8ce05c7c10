"""rules.yaml's ``entities:``, ``rates:`` and ``rules:`` -> :class:`~watcher.rules.model.Rule` objects, checked
line by line.

Everything that can be decided once is decided here: terms are normalised, entities resolved, regexes compiled,
amounts parsed, unknown keys and bad values reported with their line (with a "did you mean" where a name is
close to a known one). Matching then does no parsing at all.

Condition kinds are dispatched through :data:`BUILDERS` (key -> method); their one-line help is
:data:`~watcher.rules.conditions.KINDS`.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from types import MappingProxyType
from typing import Any

from ..durations import DurationError, parse_duration
from ..yamlsrc import Source
from .amounts import DEFAULT_RATES
from .conditions import FIELDS, KINDS, AllOf, AnyOf, Condition, EntityRef, NoneOf, Regex, SpanSource, Term
from .measures import AmountCondition, PowerCondition
from .model import SEVERITIES, Example, Rule
from .near import Near
from .normalize import normalize

# mode, digest and quiet_hours are a rule's delivery settings: config.py reads them (watcher.notify.settings)
DELIVERY_KEYS = ("mode", "digest", "quiet_hours")
RULE_KEYS = (
    "name",
    "description",
    "tags",
    "severity",
    "notify",
    "cooldown",
    "enabled",
    "examples",
    "in",
    "flags",
    *DELIVERY_KEYS,
)
CONDITION_KEYS = (*KINDS, "in", "flags")
NEAR_KEYS = ("a", "b", "within")
AMOUNT_KEYS = ("currency", "min", "max", "upper_bound")
POWER_KEYS = ("min_watts", "max_watts", "upper_bound")
ENTITY_KEYS = ("terms", "exclude")
DEFAULT_WITHIN = 10
_REGEX_FLAGS = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL, "x": re.VERBOSE, "a": re.ASCII}
_ENTITY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_CURRENCY = re.compile(r"[A-Z]{3}")


def plain(node: Any) -> Any:
    """ruamel's commented containers -> plain dicts and lists (for hashing and JSON)."""
    if isinstance(node, Mapping):
        return {str(k): plain(v) for k, v in node.items()}
    if isinstance(node, Sequence) and not isinstance(node, str):
        return [plain(v) for v in node]
    if isinstance(node, (bool, int, float, str)) or node is None:
        return node
    return str(node)


def rule_version(node: Mapping[str, Any], uses: Mapping[str, Any] | None = None) -> str:
    """A short hash of what decides matching (not the description, the examples or the delivery settings).

    `uses` adds what the rule depends on outside its own node: the definitions of the entities it references and
    the rate table when it compares amounts, so editing an entity changes the version of every rule using it.
    """
    body = {k: v for k, v in plain(node).items() if k not in ("description", "examples", *DELIVERY_KEYS)}
    if uses:
        body["__uses__"] = uses
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class EntityDef:
    """One entry of ``entities:``: terms (with their lines) and exclusions, not yet bound to a field."""

    name: str
    terms: tuple[tuple[str, int | None], ...]
    exclude: tuple[tuple[str, int | None], ...] = ()
    line: int | None = None

    def plain(self) -> dict[str, list[str]]:
        return {"terms": [t for t, _ in self.terms], "exclude": [t for t, _ in self.exclude]}


def _did_you_mean(name: str, known: Sequence[str], fallback: str) -> str:
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else fallback


def _decimal(value: Any) -> Decimal | None:
    """A YAML number (1e9, 1000000000) or numeric text ("1e9", "1_000_000", "30,000") as a Decimal, else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        text = repr(value) if isinstance(value, float) else str(int(value))
    elif isinstance(value, str):
        text = value.strip().replace("_", "").replace(",", "")
    else:
        return None
    try:
        d = Decimal(text)
    except InvalidOperation:
        return None
    return d if d.is_finite() else None


class RuleCompiler:
    """Compiles rules, recording every problem in the Source instead of stopping at the first.

    Read the top-level ``rates:`` and ``entities:`` blocks first (:meth:`read_rates`, :meth:`read_entities`),
    then :meth:`rules`.
    """

    def __init__(self, src: Source) -> None:
        self.src = src
        self.entities: dict[str, EntityDef] = {}
        self.rates: Mapping[str, Decimal] = DEFAULT_RATES
        # what the rule being compiled depends on outside its node (for its version hash)
        self._used_entities: set[str] = set()
        self._uses_rates = False
        self.builders: dict[str, Callable[[Any, Mapping[str, Any], str, str, int | None], Condition | None]] = {
            "any": self._any,
            "all": self._all,
            "none": self._none,
            "regex": self.regex,
            "entity": self._entity,
            "near": self.near,
            "amount": self.amount,
            "power": self.power,
        }
        assert set(self.builders) == set(KINDS)

    # --- top-level blocks ----------------------------------------------------------------------------------

    def read_rates(self, doc: Mapping[str, Any]) -> None:
        """``rates: {JPY: 150, EUR: 0.92}``: units of each currency per 1 USD, over the defaults."""
        block = self.src.mapping(doc, "rates", "rules.yaml")
        if block is None:
            return
        rates = dict(DEFAULT_RATES)
        for code, value in block.items():
            line = Source.line_of(block, code)
            if not isinstance(code, str) or not _CURRENCY.fullmatch(code):
                self.src.error(
                    line, f"rate '{code}' is not a currency code", "use ISO 4217 codes in capitals: JPY: 150"
                )
                continue
            rate = _decimal(value)
            if rate is None or rate <= 0:
                self.src.error(line, f"rate of {code} must be a positive number", f"units of {code} per 1 USD")
                continue
            rates[code] = rate
        if rates.get("USD") != 1:
            self.src.error(Source.line_of(block, "USD"), "the rate of USD must be 1", "rates are units per 1 USD")
        self.rates = MappingProxyType(rates)

    def read_entities(self, doc: Mapping[str, Any]) -> None:
        """``entities: {meta: {terms: [Meta, メタ], exclude: [metadata]}, anthropic: [Anthropic, Claude]}``."""
        block = self.src.mapping(doc, "entities", "rules.yaml")
        for name, value in (block or {}).items():
            line = Source.line_of(block, name)
            what = f"entity '{name}'"
            if not isinstance(name, str) or not _ENTITY_NAME.fullmatch(name):
                self.src.error(line, f"entity name '{name}' is not valid", "use letters, digits, '-', '_' and '.'")
                continue
            exclude: tuple[tuple[str, int | None], ...] = ()
            if isinstance(value, Mapping):
                self.src.check_keys(value, ENTITY_KEYS, what)
                terms = self._entity_terms(value.get("terms"), Source.line_of(value, "terms"), f"terms of {what}")
                if value.get("exclude") is not None:
                    line_x = Source.line_of(value, "exclude")
                    exclude = self._entity_terms(value["exclude"], line_x, f"exclude of {what}")
            else:
                terms = self._entity_terms(value, line, what)
            if not terms:
                continue
            normal_terms = {normalize(t) for t, _ in terms}
            for x, x_line in exclude:
                if normalize(x) in normal_terms:
                    self.src.error(x_line, f"'{x}' is both a term and an exclusion of {what}", "remove one of them")
            self.entities[name] = EntityDef(name, terms, exclude, line)

    def _entity_terms(self, value: Any, line: int | None, what: str) -> tuple[tuple[str, int | None], ...]:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, Sequence) or not value:
            self.src.error(line, f"{what} must be a non-empty list of terms", "write e.g. [Anthropic, Claude]")
            return ()
        out: list[tuple[str, int | None]] = []
        for i, item in enumerate(value):
            item_line = Source.line_of(value, i) if hasattr(value, "lc") else line
            if isinstance(item, bool) or not isinstance(item, (str, int, float)):
                self.src.error(item_line, f"item {i + 1} of {what} must be a term (text)")
                continue
            text = str(item)
            if text.startswith("@"):
                self.src.error(item_line, f"'{text}' in {what}: an entity cannot refer to another entity")
                continue
            if not normalize(text):
                self.src.error(item_line, f"an empty term in {what}")
                continue
            out.append((text, item_line))
        return tuple(out)

    # --- rules ---------------------------------------------------------------------------------------------

    def rules(self, seq: Sequence[Any]) -> list[Rule]:
        out: list[Rule] = []
        seen: dict[str, int | None] = {}
        for i, node in enumerate(seq):
            line = Source.line_of(seq, i)
            if not isinstance(node, Mapping):
                self.src.error(line, f"rule {i + 1} must be a mapping with at least 'name' and a condition")
                continue
            name = node.get("name")
            if isinstance(name, str) and name:
                if name in seen:
                    self.src.error(line, f"rule name '{name}' is used twice", f"first used on line {seen[name]}")
                seen.setdefault(name, line)
            rule = self.rule(node, line, i)
            if rule is not None:
                out.append(rule)
        return out

    def rule(self, node: Mapping[str, Any], line: int | None, index: int) -> Rule | None:
        src = self.src
        self._used_entities = set()
        self._uses_rates = False
        name = src.string(node, "name", f"rule {index + 1}")
        what = f"rule '{name}'" if name else f"rule {index + 1}"
        if not name:
            src.error(line, f"{what} has no 'name'", "add name: a-short-id")
        src.check_keys(node, RULE_KEYS + tuple(KINDS), what)
        field = self.field(node, what, "text")
        conditions = self.conditions(node, field, what)
        if not conditions and not any(k in KINDS for k in node):
            src.error(line, f"{what} has no condition", "add any:, all:, none:, near:... with the terms to look for")
        severity = src.string(node, "severity", what, "notable") or "notable"
        if severity not in SEVERITIES:
            src.error(
                Source.line_of(node, "severity"),
                f"severity '{severity}' in {what} is not known",
                "use one of: " + ", ".join(SEVERITIES),
            )
        cooldown = None
        if node.get("cooldown") is not None:
            try:
                cooldown = parse_duration(node["cooldown"])
            except DurationError as e:
                src.error(Source.line_of(node, "cooldown"), f"'cooldown' in {what}: {e}", "write e.g. 12h or 2d")
        if not name or not conditions:
            return None
        root = conditions[0] if len(conditions) == 1 else AllOf(tuple(conditions), line)
        uses: dict[str, Any] = {}
        if self._used_entities:
            uses["entities"] = {n: self.entities[n].plain() for n in sorted(self._used_entities)}
        if self._uses_rates and self.rates is not DEFAULT_RATES:
            uses["rates"] = {k: str(v) for k, v in sorted(self.rates.items())}
        return Rule(
            name=name,
            tags=src.strings(node, "tags", what),
            root=root,
            version=rule_version(node, uses),
            notify=src.strings(node, "notify", what),
            severity=severity,
            description=src.string(node, "description", what, "") or "",
            enabled=src.boolean(node, "enabled", what, True),
            cooldown=cooldown,
            examples=self.examples(node, what),
            line=line,
        )

    def examples(self, node: Mapping[str, Any], what: str) -> tuple[Example, ...]:
        block = self.src.mapping(node, "examples", what)
        if block is None:
            return ()
        self.src.check_keys(block, ("match", "no_match"), f"examples of {what}")
        out: list[Example] = []
        for key, expect in (("match", True), ("no_match", False)):
            seq = self.src.sequence(block, key, f"examples of {what}")
            for i, item in enumerate(seq or ()):
                if not isinstance(item, str):
                    self.src.error(Source.line_of(seq, i), f"example {i + 1} under {key} of {what} must be text")
                    continue
                out.append(Example(item, expect, Source.line_of(seq, i)))
        return tuple(out)

    # --- conditions ----------------------------------------------------------------------------------------

    def field(self, node: Mapping[str, Any], what: str, inherited: str) -> str:
        value = node.get("in")
        if value is None:
            return inherited
        if value not in FIELDS:
            self.src.error(
                Source.line_of(node, "in"),
                f"'in: {value}' in {what} is not a field",
                "use one of: " + ", ".join(FIELDS),
            )
            return inherited
        return str(value)

    def conditions(self, node: Mapping[str, Any], field: str, what: str) -> list[Condition]:
        """The condition keys present in a mapping, in the order written (several keys: all must hold)."""
        out: list[Condition] = []
        for key in node:
            if key not in KINDS:
                continue
            line = Source.line_of(node, key)
            cond = self.builders[key](node[key], node, field, what, line)
            if cond is not None:
                out.append(cond)
        return out

    def condition(
        self, key: str, value: Any, parent: Mapping[str, Any], field: str, what: str, line: int | None
    ) -> Condition | None:
        """Build one condition from its key and value (see :data:`KINDS`)."""
        return self.builders[key](value, parent, field, what, line)

    def _children(self, key: str, value: Any, field: str, what: str, line: int | None) -> list[Condition]:
        """The items of an ``any`` / ``all`` / ``none`` list."""
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, Sequence) or not value:
            self.src.error(
                line,
                f"'{key}' in {what} must be a non-empty list of terms or conditions",
                f"write {key}: [word, another phrase]",
            )
            return []
        children: list[Condition] = []
        for i, item in enumerate(value):
            item_line = Source.line_of(value, i) if hasattr(value, "lc") else line
            child = self.item(item, field, f"{key} of {what}", item_line)
            if child is not None:
                children.append(child)
        return children

    def _any(self, value: Any, parent: Mapping[str, Any], field: str, what: str, line: int | None) -> Condition | None:
        children = self._children("any", value, field, what, line)
        return AnyOf(tuple(children), line) if children else None

    def _all(self, value: Any, parent: Mapping[str, Any], field: str, what: str, line: int | None) -> Condition | None:
        children = self._children("all", value, field, what, line)
        return AllOf(tuple(children), line) if children else None

    def _none(self, value: Any, parent: Mapping[str, Any], field: str, what: str, line: int | None) -> Condition | None:
        children = self._children("none", value, field, what, line)
        return NoneOf(tuple(children), line) if children else None

    def item(self, item: Any, field: str, what: str, line: int | None) -> Condition | None:
        if isinstance(item, bool) or item is None:
            self.src.error(line, f"an empty or true/false item in {what}", "quote it if it is a word: 'yes'")
            return None
        if isinstance(item, (str, int, float)):
            return self.term(str(item), field, what, line)
        if isinstance(item, Mapping):
            self.src.check_keys(item, CONDITION_KEYS, f"a condition in {what}")
            sub_field = self.field(item, what, field)
            conds = self.conditions(item, sub_field, what)
            if not conds:
                if not any(k in KINDS for k in item):
                    kinds = ", ".join(f"{k}:" for k in KINDS)
                    self.src.error(line, f"a condition in {what} has none of {kinds}")
                return None
            return conds[0] if len(conds) == 1 else AllOf(tuple(conds), line)
        self.src.error(line, f"a nested list in {what}", "wrap it in a condition: {any: [a, b]}")
        return None

    def term(self, text: str, field: str, what: str, line: int | None) -> Term | EntityRef | None:
        """A word or phrase; ``@name`` refers to an entity."""
        if text.startswith("@"):
            return self.entity_ref(text[1:], field, what, line)
        phrase = normalize(text)
        if not phrase:
            self.src.error(line, f"an empty term in {what}")
            return None
        return Term(phrase=phrase, source=text, field=field, line=line)

    def entity_ref(self, name: str, field: str, what: str, line: int | None) -> EntityRef | None:
        entity = self.entities.get(name)
        if entity is None:
            fallback = (
                "define it under entities: at the top of rules.yaml"
                if not self.entities
                else "known entities: " + ", ".join(sorted(self.entities))
            )
            self.src.error(
                line, f"unknown entity '{name}' in {what}", _did_you_mean(name, list(self.entities), fallback)
            )
            return None
        self._used_entities.add(name)
        members = tuple(Term(normalize(t), t, field, t_line) for t, t_line in entity.terms)
        exclude = tuple(Term(normalize(t), t, field, t_line) for t, t_line in entity.exclude)
        return EntityRef(name, members, exclude, field, line)

    def _entity(
        self, value: Any, parent: Mapping[str, Any], field: str, what: str, line: int | None
    ) -> EntityRef | None:
        if not isinstance(value, str) or not value:
            self.src.error(line, f"'entity' in {what} must be the name of an entity", "write {entity: meta}")
            return None
        return self.entity_ref(value.removeprefix("@"), field, what, line)

    def regex(self, value: Any, parent: Mapping[str, Any], field: str, what: str, line: int | None) -> Regex | None:
        if not isinstance(value, str) or not value:
            self.src.error(line, f"'regex' in {what} must be a pattern", "write regex: 'pattern' (quote it)")
            return None
        flags = 0
        for ch in str(parent.get("flags", "")):
            if ch not in _REGEX_FLAGS:
                self.src.error(
                    Source.line_of(parent, "flags"),
                    f"unknown regex flag '{ch}' in {what}",
                    "flags are letters among: " + "".join(_REGEX_FLAGS),
                )
                continue
            flags |= _REGEX_FLAGS[ch]
        try:
            pattern = re.compile(value, flags)
        except re.error as e:
            self.src.error(line, f"bad regex in {what}: {e.msg} at position {e.pos}", "check brackets and escapes")
            return None
        return Regex(pattern=pattern, source=value, field=field, line=line)

    # --- near ----------------------------------------------------------------------------------------------

    def near(self, value: Any, parent: Mapping[str, Any], field: str, what: str, line: int | None) -> Near | None:
        src = self.src
        if not isinstance(value, Mapping):
            src.error(line, f"'near' in {what} must be a mapping", "write near: {a: [x], b: [y], within: 10}")
            return None
        src.check_keys(value, NEAR_KEYS, f"near of {what}")
        groups: list[tuple[SpanSource, ...]] = []
        for key in ("a", "b"):
            if value.get(key) is None:
                src.error(line, f"'near' in {what} has no '{key}'", "write near: {a: [x], b: [y], within: 10}")
                groups.append(())
                continue
            groups.append(self._near_group(value[key], field, f"group {key} of near in {what}", value, key))
        within = DEFAULT_WITHIN
        if value.get("within") is not None:
            w = value["within"]
            if isinstance(w, bool) or not isinstance(w, int) or w < 0:
                src.error(Source.line_of(value, "within"), f"'within' of near in {what} must be a whole number >= 0")
            else:
                within = int(w)
        if not groups[0] or not groups[1]:
            return None
        return Near(groups[0], groups[1], within, field, line)

    def _near_group(
        self, value: Any, field: str, what: str, parent: Mapping[str, Any], key: str
    ) -> tuple[SpanSource, ...]:
        line = Source.line_of(parent, key)
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, Sequence) or not value:
            self.src.error(line, f"{what} must be a non-empty list of terms", "write e.g. a: [anthropic, claude]")
            return ()
        out: list[SpanSource] = []
        for i, item in enumerate(value):
            item_line = Source.line_of(value, i) if hasattr(value, "lc") else line
            node: SpanSource | None = None
            if (
                isinstance(item, Mapping)
                and set(item) <= {"entity", "regex", "flags"}
                and len(set(item) - {"flags"}) == 1
            ):
                if "entity" in item:
                    node = self._entity(item["entity"], item, field, what, item_line)
                else:
                    node = self.regex(item["regex"], item, field, what, item_line)
            elif isinstance(item, (str, int, float)) and not isinstance(item, bool):
                node = self.term(str(item), field, what, item_line)
            else:
                self.src.error(
                    item_line,
                    f"item {i + 1} of {what} is not a term",
                    "a near group takes terms, '@entity', {entity: name} or {regex: '...'}",
                )
            if node is not None:
                out.append(node)
        return tuple(out)

    # --- amount and power ----------------------------------------------------------------------------------

    def _bounds(
        self, value: Mapping[str, Any], low_key: str, high_key: str, what: str
    ) -> tuple[Decimal | None, Decimal | None, bool]:
        bounds: list[Decimal | None] = []
        ok = True
        for key in (low_key, high_key):
            if value.get(key) is None:
                bounds.append(None)
                continue
            d = _decimal(value[key])
            if d is None or d < 0:
                self.src.error(
                    Source.line_of(value, key),
                    f"'{key}' of {what} must be a number >= 0",
                    "write e.g. 1e9 or 1000000000 (no units)",
                )
                ok = False
            bounds.append(d)
        low, high = bounds
        if low is not None and high is not None and low > high:
            self.src.error(Source.line_of(value, high_key), f"'{high_key}' of {what} is below '{low_key}'")
            ok = False
        return low, high, ok

    def amount(
        self, value: Any, parent: Mapping[str, Any], field: str, what: str, line: int | None
    ) -> AmountCondition | None:
        src = self.src
        if not isinstance(value, Mapping):
            src.error(line, f"'amount' in {what} must be a mapping", "write amount: {currency: USD, min: 1e9}")
            return None
        where = f"amount in {what}"
        src.check_keys(value, AMOUNT_KEYS, where)
        currency = (src.string(value, "currency", where, "USD") or "USD").upper()
        ok = True
        if currency not in self.rates:
            fallback = "add its rate under rates: at the top of rules.yaml (units per 1 USD)"
            src.error(
                Source.line_of(value, "currency"),
                f"currency '{currency}' of {where} has no exchange rate",
                _did_you_mean(currency, sorted(self.rates), fallback),
            )
            ok = False
        low, high, bounds_ok = self._bounds(value, "min", "max", where)
        upper = src.boolean(value, "upper_bound", where, True)
        if not (ok and bounds_ok):
            return None
        self._uses_rates = True
        return AmountCondition(low, high, upper, field, line, currency=currency, rates=self.rates)

    def power(
        self, value: Any, parent: Mapping[str, Any], field: str, what: str, line: int | None
    ) -> PowerCondition | None:
        src = self.src
        if not isinstance(value, Mapping):
            src.error(line, f"'power' in {what} must be a mapping", "write power: {min_watts: 1e8}")
            return None
        where = f"power in {what}"
        src.check_keys(value, POWER_KEYS, where)
        low, high, ok = self._bounds(value, "min_watts", "max_watts", where)
        upper = src.boolean(value, "upper_bound", where, True)
        return PowerCondition(low, high, upper, field, line) if ok else None
