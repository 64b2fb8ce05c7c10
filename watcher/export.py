"""Hits as CSV, JSON or JSON lines, for spreadsheets and other tools (``watcher hits --format``). Pure.

CSV: a header row, one hit per row, UTF-8, lists (tags, matched terms) joined with ``"; "``, ``details`` as
compact JSON. Feed text is untrusted and spreadsheets run cells that start with ``=``, ``+``, ``-`` or ``@``
as formulas (CSV injection), so such text cells get a leading apostrophe, which spreadsheets show as text.
JSON: one array of objects, as ``--json`` always printed. JSON lines: one object per line, newest first.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from typing import Any

FORMATS = ("table", "csv", "json", "jsonl")
CSV_COLUMNS = (
    "first_seen",
    "published",
    "rule",
    "severity",
    "tags",
    "feed",
    "title",
    "link",
    "matched",
    "details",
    "rule_version",
    "id",
)
LIST_SEPARATOR = "; "
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return LIST_SEPARATOR.join(_cell(v) for v in value)
    if isinstance(value, Mapping):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True) if value else ""
    return str(value)


def _safe(text: str) -> str:
    """Defuse a cell a spreadsheet would evaluate as a formula."""
    return "'" + text if text.startswith(_FORMULA_START) else text


def to_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")  # RFC 4180 line ends
    w.writerow(CSV_COLUMNS)
    for r in rows:
        w.writerow([_safe(_cell(r.get(c))) for c in CSV_COLUMNS])
    return out.getvalue()


def to_json(rows: Sequence[Mapping[str, Any]]) -> str:
    return json.dumps(list(rows), ensure_ascii=False, indent=2) + "\n"


def to_jsonl(rows: Sequence[Mapping[str, Any]]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def render(rows: Sequence[Mapping[str, Any]], fmt: str) -> str:
    """`rows` as returned by Store.recent_hits, in `fmt` (csv, json, jsonl)."""
    if fmt == "csv":
        return to_csv(rows)
    if fmt == "json":
        return to_json(rows)
    if fmt == "jsonl":
        return to_jsonl(rows)
    raise ValueError(f"unknown export format {fmt!r}")
