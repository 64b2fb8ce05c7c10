"""A compiled watch rule."""

from __future__ import annotations

from dataclasses import dataclass

from .conditions import Condition

SEVERITIES = ("info", "notable", "urgent")


@dataclass(frozen=True)
class Example:
    """A short text documenting what a rule must (or must not) match; ``watcher rules test`` runs it."""

    text: str  # a title, or title + summary
    should_match: bool  # True under examples.match, False under examples.no_match
    line: int | None  # line of the example in rules.yaml


@dataclass(frozen=True)
class Rule:
    """One rule of rules.yaml, compiled."""

    name: str  # unique name, used by `watcher hits --rule`
    tags: tuple[str, ...]  # watch item ids
    root: Condition  # the condition tree
    version: str  # short hash of the definition: a hit records which version made it
    notify: tuple[str, ...] = ()  # destination names; empty: the file's defaults
    severity: str = "notable"  # info / notable / urgent
    description: str = ""  # free text for people
    enabled: bool = True  # a disabled rule is loaded and checked, never matched
    cooldown: float | None = None  # seconds: no second alert for the same rule and story within it
    examples: tuple[Example, ...] = ()  # documented cases, run by `watcher rules test`
    line: int | None = None  # line where the rule starts in rules.yaml
