"""Read a YAML file keeping the line of every key and list item, so config errors can point at them.

ruamel.yaml's round-trip loader records positions on the maps and lists it builds (``.lc``); this module wraps
that in a tiny API and collects every problem as a :class:`~watcher.errors.ConfigIssue` instead of stopping at
the first, so ``watcher check`` can list them all at once.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from .durations import DurationError, parse_duration, parse_size
from .errors import ConfigError, ConfigIssue

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _yaml() -> YAML:
    y = YAML(typ="rt")
    y.allow_duplicate_keys = False
    return y


class Source:
    """One YAML document being read; collects issues with file:line."""

    def __init__(self, path: str, text: str) -> None:
        self.path = path
        self.text = text
        self.issues: list[ConfigIssue] = []

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Source:
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except FileNotFoundError as e:
            raise ConfigError(
                ConfigIssue(str(path), None, "file not found", "create it, or point to it with the option")
            ) from e
        except UnicodeDecodeError as e:
            raise ConfigError(ConfigIssue(str(path), None, f"not UTF-8 text ({e.reason})", "save it as UTF-8")) from e
        except OSError as e:
            raise ConfigError(ConfigIssue(str(path), None, f"cannot read: {e.strerror}")) from e
        return cls(str(path), text)

    # --- loading ---------------------------------------------------------------------------------------

    def load(self) -> Any:
        """Parse the document; on a syntax error record it and return None."""
        try:
            return _yaml().load(self.text)
        except MarkedYAMLError as e:
            mark = e.problem_mark or e.context_mark
            line = mark.line + 1 if mark is not None else None
            problem = (e.problem or e.context or "invalid YAML").strip()
            hint = "check indentation, and quote values containing ': ' or starting with a special character"
            if "duplicate key" in problem or type(e).__name__ == "DuplicateKeyError":
                problem, hint = "duplicate key", "each key may appear once in a mapping"
            self.error(line, f"YAML syntax error: {problem}", hint)
        except YAMLError as e:
            self.error(None, f"YAML error: {e}")
        return None

    # --- issues ----------------------------------------------------------------------------------------

    def error(self, line: int | None, message: str, hint: str = "") -> None:
        self.issues.append(ConfigIssue(self.path, line, message, hint))

    def raise_if_issues(self) -> None:
        if self.issues:
            raise ConfigError(sorted(self.issues, key=lambda i: i.line or 0))

    # --- positions -------------------------------------------------------------------------------------

    @staticmethod
    def line_of(node: Any, key: Any = None) -> int | None:
        """1-based line of `key` in a mapping, of item `key` in a list, or of the node itself."""
        lc = getattr(node, "lc", None)
        if lc is None:
            return None
        try:
            if key is None:
                return int(lc.line) + 1
            if isinstance(node, Mapping):
                return int(lc.key(key)[0]) + 1
            return int(lc.item(key)[0]) + 1
        except (KeyError, IndexError, TypeError, AttributeError):
            return int(lc.line) + 1 if getattr(lc, "line", None) is not None else None

    def check_keys(self, node: Mapping[Any, Any], allowed: Iterable[str], what: str) -> None:
        """Every key must be one of `allowed`; an unknown one is an error with a 'did you mean'."""
        allowed = list(allowed)
        for key in node:
            if key not in allowed:
                close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
                hint = f"did you mean '{close[0]}'?" if close else "allowed keys: " + ", ".join(sorted(allowed))
                self.error(self.line_of(node, key), f"unknown key '{key}' in {what}", hint)

    # --- typed getters: each records an issue and returns the default on a wrong value ------------------

    def mapping(self, node: Any, key: str, what: str) -> Mapping[str, Any] | None:
        value = node.get(key)
        if value is None:
            return None
        if not isinstance(value, Mapping):
            self.error(self.line_of(node, key), f"'{key}' in {what} must be a mapping (key: value lines)")
            return None
        return value

    def sequence(self, node: Mapping[str, Any], key: str, what: str) -> Sequence[Any] | None:
        value = node.get(key)
        if value is None:
            return None
        if isinstance(value, str) or not isinstance(value, Sequence):
            self.error(
                self.line_of(node, key), f"'{key}' in {what} must be a list", "write it as [a, b] or as '- a' lines"
            )
            return None
        return value

    def string(self, node: Mapping[str, Any], key: str, what: str, default: str | None = None) -> str | None:
        value = node.get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            self.error(self.line_of(node, key), f"'{key}' in {what} must be a text value")
            return default
        return str(value)

    def strings(self, node: Mapping[str, Any], key: str, what: str) -> tuple[str, ...]:
        """A list of strings; a single string is accepted as a list of one."""
        value = node.get(key)
        if value is None:
            return ()
        if isinstance(value, str):
            return (value,)
        if not isinstance(value, Sequence):
            self.error(self.line_of(node, key), f"'{key}' in {what} must be a list of text values")
            return ()
        out = []
        for i, item in enumerate(value):
            if isinstance(item, bool) or not isinstance(item, (str, int, float)):
                self.error(self.line_of(value, i), f"item {i + 1} of '{key}' in {what} must be a text value")
            else:
                out.append(str(item))
        return tuple(out)

    def boolean(self, node: Mapping[str, Any], key: str, what: str, default: bool) -> bool:
        value = node.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            self.error(self.line_of(node, key), f"'{key}' in {what} must be true or false")
            return default
        return value

    def integer(self, node: Mapping[str, Any], key: str, what: str, default: int, minimum: int = 0) -> int:
        value = node.get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            self.error(self.line_of(node, key), f"'{key}' in {what} must be a whole number >= {minimum}")
            return default
        return value

    def duration(self, node: Mapping[str, Any], key: str, what: str, default: float) -> float:
        value = node.get(key)
        if value is None:
            return default
        try:
            return parse_duration(value)
        except DurationError as e:
            self.error(self.line_of(node, key), f"'{key}' in {what}: {e}", "write e.g. 30s, 15m, 2h, 7d or seconds")
            return default

    def size(self, node: Mapping[str, Any], key: str, what: str, default: int) -> int:
        value = node.get(key)
        if value is None:
            return default
        try:
            return parse_size(value)
        except DurationError as e:
            self.error(
                self.line_of(node, key), f"'{key}' in {what}: {e}", "write e.g. 10MB, 512KB or a number of bytes"
            )
            return default

    def expand_env(self, value: str, line: int | None, environ: Mapping[str, str]) -> str | None:
        """Substitute ${VAR}; a missing variable is an error naming it (never its value)."""
        missing = [m.group(1) for m in _ENV_REF.finditer(value) if m.group(1) not in environ]
        if missing:
            for name in missing:
                self.error(
                    line, f"environment variable {name} is not set", f"export {name}=... before starting watcher"
                )
            return None
        return _ENV_REF.sub(lambda m: environ[m.group(1)], value)


def items_with_lines(node: Sequence[Any]) -> Iterator[tuple[int, int | None, Any]]:
    """(index, line, item) for each item of a YAML list."""
    for i, item in enumerate(node):
        yield i, Source.line_of(node, i), item
