"""One exception root for everything watcher raises on purpose.

    WatcherError                 any error watcher reports to the user
    ├── ConfigError              feeds.yaml / rules.yaml is invalid; carries every ConfigIssue found
    ├── FetchError               a feed could not be fetched (normally returned as a value, see fetch.py)
    ├── ParseError               bytes that are not a usable feed
    ├── StoreError               the database cannot be opened or written
    └── NotifyError              a destination cannot be built or reached

Third-party exceptions are wrapped once, at the boundary, always with ``raise ... from e``.
A programming error (``TypeError``, ``KeyError``...) is never wrapped: it must surface.
"""

from __future__ import annotations

from dataclasses import dataclass


class WatcherError(Exception):
    """Root of every error watcher reports to the user."""


@dataclass(frozen=True)
class ConfigIssue:
    """One problem in a configuration file, pointing at the line to fix."""

    path: str  # the file, as the user named it
    line: int | None  # 1-based line, None when the file itself is the problem
    message: str  # what is wrong
    hint: str = ""  # how to fix it, or "" when the message says it all

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line is not None else self.path
        text = f"{where}: {self.message}"
        return f"{text} ({self.hint})" if self.hint else text


class ConfigError(WatcherError):
    """One or more problems in feeds.yaml or rules.yaml."""

    def __init__(self, issues: list[ConfigIssue] | ConfigIssue) -> None:
        self.issues = [issues] if isinstance(issues, ConfigIssue) else list(issues)
        super().__init__("\n".join(str(i) for i in self.issues))


class FetchError(WatcherError):
    """A feed could not be fetched."""


class ParseError(WatcherError):
    """The fetched bytes are not a usable feed."""


class StoreError(WatcherError):
    """The database cannot be opened, migrated or written."""


class NotifyError(WatcherError):
    """A notification destination cannot be built or reached."""
