"""The watch-rule language: compile once at load, match fast, explain why.

    rules.yaml --compile.py--> Rule (a tree of conditions.py nodes) --matcher.py--> RuleSet.match(entry) -> Hit...

``normalize.py`` holds the one text normalisation (NFKC, casefold, collapsed spaces) that both the rules' terms
and the entries' text go through, so "ＮＶＩＤＩＡ" in a feed matches "nvidia" in a rule.
"""

from .matcher import RuleSet
from .model import Rule

__all__ = ["Rule", "RuleSet"]
