"""rules.yaml's ``rules:`` list -> :class:`~watcher.rules.model.Rule` objects, checked line by line.

Everything that can be decided once is decided here: terms are normalised, regexes compiled, unknown keys and
bad values reported with their line. Matching then does no parsing at all.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from ..durations import DurationError, parse_duration
from ..yamlsrc import Source
from .conditions import FIELDS, KINDS, AllOf, AnyOf, Condition, NoneOf, Regex, Term
from .model import SEVERITIES, Example, Rule
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
_REGEX_FLAGS = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL, "x": re.VERBOSE, "a": re.ASCII}


def plain(node: Any) -> Any:
    """ruamel's commented containers -> plain dicts and lists (for hashing and JSON)."""
    if isinstance(node, Mapping):
        return {str(k): plain(v) for k, v in node.items()}
    if isinstance(node, Sequence) and not isinstance(node, str):
        return [plain(v) for v in node]
    if isinstance(node, (bool, int, float, str)) or node is None:
        return node
    return str(node)


def rule_version(node: Mapping[str, Any]) -> str:
    """A short hash of what decides matching (not the description or the examples)."""
    body = {k: v for k, v in plain(node).items() if k not in ("description", "examples", *DELIVERY_KEYS)}
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:12]


class RuleCompiler:
    """Compiles rules, recording every problem in the Source instead of stopping at the first."""

    def __init__(self, src: Source) -> None:
        self.src = src

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
        name = src.string(node, "name", f"rule {index + 1}")
        what = f"rule '{name}'" if name else f"rule {index + 1}"
        if not name:
            src.error(line, f"{what} has no 'name'", "add name: a-short-id")
        src.check_keys(node, RULE_KEYS + tuple(KINDS), what)
        field = self.field(node, what, "text")
        conditions = self.conditions(node, field, what)
        if not conditions and not any(k in KINDS for k in node):
            src.error(line, f"{what} has no condition", "add any:, all: or none: with the terms to look for")
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
        return Rule(
            name=name,
            tags=src.strings(node, "tags", what),
            root=root,
            version=rule_version(node),
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
            cond = self.condition(key, node[key], node, field, what, line)
            if cond is not None:
                out.append(cond)
        return out

    def condition(
        self, key: str, value: Any, parent: Mapping[str, Any], field: str, what: str, line: int | None
    ) -> Condition | None:
        if key == "regex":
            return self.regex(value, parent, field, what, line)
        # any / all / none take a list of terms and nested conditions
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, Sequence) or not value:
            self.src.error(
                line,
                f"'{key}' in {what} must be a non-empty list of terms or conditions",
                f"write {key}: [word, another phrase]",
            )
            return None
        children: list[Condition] = []
        for i, item in enumerate(value):
            item_line = Source.line_of(value, i) if hasattr(value, "lc") else line
            child = self.item(item, field, f"{key} of {what}", item_line)
            if child is not None:
                children.append(child)
        if not children:
            return None
        if key == "any":
            return AnyOf(tuple(children), line)
        if key == "all":
            return AllOf(tuple(children), line)
        return NoneOf(tuple(children), line)

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
                self.src.error(line, f"a condition in {what} has no any:, all:, none: or regex:")
                return None
            return conds[0] if len(conds) == 1 else AllOf(tuple(conds), line)
        self.src.error(line, f"a nested list in {what}", "wrap it in a condition: {any: [a, b]}")
        return None

    def term(self, text: str, field: str, what: str, line: int | None) -> Term | None:
        phrase = normalize(text)
        if not phrase:
            self.src.error(line, f"an empty term in {what}")
            return None
        return Term(phrase=phrase, source=text, field=field, line=line)

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
