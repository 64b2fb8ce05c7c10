"""Log formats: human-readable lines by default, JSON lines with ``--log-format json``.

A JSON line carries the time, level, logger and message, plus every field the call passed with ``extra=``:
the poll log line of pipeline.py passes ``event="poll"``, ``feed``, ``status``, ``http``, ``new``, ``hits``,
``alerts``, ``duration`` and ``error``, so a log collector can filter and count without parsing the message.
No field holds a secret: destination URLs never reach a log call (notify.py logs the destination's name and
the URL's scheme), and the libraries that would log them (apprise, httpx) are kept at WARNING.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

LOG_FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
TEXT_DATEFMT = "%Y-%m-%d %H:%M:%S"

# the attributes every LogRecord has; anything else on a record came through `extra=`
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line; `extra=` fields become top-level keys."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_") and key not in out:
                out[key] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


def formatter(kind: str) -> logging.Formatter:
    if kind == "json":
        return JsonFormatter()
    return logging.Formatter(TEXT_FORMAT, datefmt=TEXT_DATEFMT)
