"""Durations (``30s``, ``15m``, ``2h``, ``7d``, ``1h30m`` or a number of seconds) and sizes (``10MB``)."""

from __future__ import annotations

import re

from .errors import WatcherError


class DurationError(WatcherError, ValueError):
    """A duration or size that cannot be read."""


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
_WHOLE = re.compile(r"^\s*(?:\d+(?:\.\d+)?\s*[smhdw]\s*)+$")
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(b|kb|kib|mb|mib|gb|gib)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"b": 1, "kb": 1000, "kib": 1024, "mb": 1000**2, "mib": 1024**2, "gb": 1000**3, "gib": 1024**3}


def parse_duration(value: object) -> float:
    """Seconds in `value`; raises DurationError naming what was wrong."""
    if isinstance(value, bool):
        raise DurationError(f"{value!r} is not a duration")
    if isinstance(value, (int, float)):
        if value < 0:
            raise DurationError(f"{value} is negative")
        return float(value)
    if isinstance(value, str):
        text = value.strip().lower()
        try:
            number = float(text)
        except ValueError:
            pass
        else:
            if number < 0:
                raise DurationError(f"{value!r} is negative")
            return number
        if _WHOLE.match(text):
            return float(sum(float(n) * _UNITS[u] for n, u in _PART.findall(text)))
    raise DurationError(f"{value!r} is not a duration")


def parse_size(value: object) -> int:
    """Bytes in `value` (``10MB``, ``512KiB``, ``1000``)."""
    if isinstance(value, bool):
        raise DurationError(f"{value!r} is not a size")
    if isinstance(value, int) and value > 0:
        return value
    if isinstance(value, str):
        m = _SIZE.match(value)
        if m:
            n = int(float(m.group(1)) * _SIZE_UNITS[(m.group(2) or "b").lower()])
            if n > 0:
                return n
    raise DurationError(f"{value!r} is not a size")


def format_duration(seconds: float) -> str:
    """The shortest readable form: 90 -> '1m30s', 86400 -> '1d'."""
    s = round(seconds)
    if s == 0:
        return "0s"
    out = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if s >= size:
            out.append(f"{s // size}{unit}")
            s %= size
    return "".join(out)
