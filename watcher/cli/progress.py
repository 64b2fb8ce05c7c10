"""A small progress bar for long commands (``watcher rules backtest`` on a large database), on stderr.

Hand-written: one line redrawn with a carriage return, at most a few times a second, so it costs nothing next to
the work it reports. It is drawn only on a terminal (a log file or a pipe must not fill with redraws) and only
when the work is large enough to be worth watching.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

MIN_ITEMS = 2000
"""Below this many items the work takes about a second or less: no bar."""


def wanted(stream: TextIO, total: int, minimum: int = MIN_ITEMS) -> bool:
    """Draw a bar for `total` items on `stream`? Only on a terminal, and only for large work."""
    isatty = getattr(stream, "isatty", None)
    return total >= minimum and callable(isatty) and bool(isatty())


class Progress:
    """``label [#######.............]  35%  3,500/10,000  4,200/s``, redrawn in place."""

    def __init__(
        self,
        total: int,
        stream: TextIO,
        *,
        label: str = "",
        enabled: bool = True,
        width: int = 30,
        interval: float = 0.2,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total = max(0, total)
        self.done = 0
        self.stream = stream
        self.label = label
        self.enabled = enabled
        self.width = width
        self.interval = interval  # seconds between two redraws
        self.clock = clock
        self.started = clock()
        self._last_draw: float | None = None

    def advance(self, n: int = 1) -> None:
        self.done += n
        if not self.enabled:
            return
        now = self.clock()
        if self._last_draw is None or now - self._last_draw >= self.interval or self.done >= self.total:
            self._draw(now)

    def line(self, now: float) -> str:
        """The bar as text (without the carriage return)."""
        frac = min(1.0, self.done / self.total) if self.total else 1.0
        filled = int(frac * self.width)
        elapsed = max(now - self.started, 1e-9)
        rate = self.done / elapsed
        head = f"{self.label} " if self.label else ""
        return (
            f"{head}[{'#' * filled}{'.' * (self.width - filled)}] {frac:4.0%}  "
            f"{self.done:,}/{self.total:,}  {rate:,.0f}/s"
        )

    def _draw(self, now: float) -> None:
        self._last_draw = now
        self.stream.write("\r" + self.line(now))
        self.stream.flush()

    def close(self) -> None:
        """Draw the final state and end the line (only if a bar was drawn)."""
        if self.enabled and self._last_draw is not None:
            self._draw(self.clock())
            self.stream.write("\n")
            self.stream.flush()
