"""One deliverer at a time per database: an advisory file lock beside the SQLite file.

Two processes draining the same outbox (the daemon, and a `watcher poll` or `watcher alerts retry` run by hand)
would both send the same pending alert. The drain therefore holds an exclusive ``flock`` on
``<database>.deliver.lock``. The kernel releases it when the process dies, SIGKILL included, so a crash never
leaves a stale lock behind (a lease in the database would, until it expired). For a database that is not a
local SQLite file there is no lock file: run one watcher per database.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Windows; then there is no cross-process lock
    fcntl = None  # type: ignore[assignment]


class DeliveryLock:
    """An exclusive, crash-safe lock held while an outbox drain runs."""

    def __init__(self, path: str | os.PathLike[str] | None) -> None:
        self.path = Path(path) if path is not None else None

    @classmethod
    def beside(cls, database: str | None) -> DeliveryLock:
        """The lock for a SQLite file (its path + ``.deliver.lock``); a no-op lock for anything else."""
        if not database or database == ":memory:" or fcntl is None:
            return cls(None)
        return cls(str(Path(database).expanduser()) + ".deliver.lock")

    def _try(self) -> int | None:
        assert self.path is not None and fcntl is not None
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        return fd

    @contextlib.asynccontextmanager
    async def hold(self, wait: float = 0.0) -> AsyncIterator[bool]:
        """Yield True with the lock held, or False if another process kept it for `wait` seconds."""
        if self.path is None:
            yield True
            return
        deadline = time.monotonic() + wait
        fd = self._try()
        while fd is None and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            fd = self._try()
        if fd is None:
            yield False
            return
        try:
            yield True
        finally:
            os.close(fd)  # closing the descriptor releases the flock
