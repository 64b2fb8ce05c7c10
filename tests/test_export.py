"""`watcher hits --format csv|json|jsonl`: through the real command line on a real SQLite file."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from watcher.cli import main
from watcher.models import Entry, Hit
from watcher.store import PollWrite, Store

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def db(tmp_path: Path) -> str:
    path = str(tmp_path / "w.db")
    store = Store.open(path)
    state = store.sync_feeds([("日本語ニュース", "https://j.example/feed")], NOW)["日本語ニュース"]
    items = [
        Entry(key="1", title="Anthropic、Azureの演算能力を最大300億ドル分購入へ", link="https://j.example/1"),
        Entry(key="2", title='=HYPERLINK("https://evil.example","click"), "quoted"', link="https://j.example/2"),
        Entry(key="3", title="Weather, today\nand tomorrow", link="https://j.example/3"),
    ]
    hits = {
        "1": [
            Hit("big-compute", "v1", ("compute-contracts", "azure-supply"), "notable", ("console",), ("演算", "億ドル"))
        ],
        "2": [Hit("rival-deals", "v2", (), "urgent", ("console",), ("click",), {"amounts": ["USD 3e10"]})],
    }
    store.record_poll(
        PollWrite(
            state.feed_id, NOW - timedelta(hours=1), "https://j.example/feed", 200, None, None, "J", items, hits, None
        )
    )
    store.close()
    return path


def run(capsysbinary: pytest.CaptureFixture[bytes], db: str, *args: str) -> tuple[int, bytes]:
    code = main(["--db", db, "--feeds", "/nonexistent.yaml", "hits", *args])
    return code, capsysbinary.readouterr().out


def test_csv_has_a_header_utf8_joined_lists_and_defused_formulas(
    db: str, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    code, out = run(capsysbinary, db, "--format", "csv")
    assert code == 0
    text = out.decode("utf-8")  # UTF-8 whatever the locale
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert list(rows[0]) == [
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
    ]
    by_rule = {r["rule"]: r for r in rows}
    ja = by_rule["big-compute"]
    assert ja["title"] == "Anthropic、Azureの演算能力を最大300億ドル分購入へ" and ja["feed"] == "日本語ニュース"
    assert ja["tags"] == "compute-contracts; azure-supply" and ja["matched"] == "演算; 億ドル"
    assert ja["details"] == "" and ja["first_seen"].endswith("Z")
    evil = by_rule["rival-deals"]
    assert evil["title"] == '\'=HYPERLINK("https://evil.example","click"), "quoted"'  # shown as text, not run
    assert evil["tags"] == "" and json.loads(evil["details"]) == {"amounts": ["USD 3e10"]}
    assert len(rows) == 2 and text.endswith("\r\n")


def test_json_and_its_alias_and_jsonl(db: str, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    _, as_json = run(capsysbinary, db, "--format", "json")
    _, alias = run(capsysbinary, db, "--json")
    assert as_json == alias
    objs = json.loads(as_json)
    assert {o["rule"] for o in objs} == {"big-compute", "rival-deals"}
    _, lines = run(capsysbinary, db, "--format", "jsonl", "--rule", "big-compute")
    (one,) = [json.loads(line) for line in lines.decode("utf-8").splitlines()]
    assert one["tags"] == ["compute-contracts", "azure-supply"] and "300億ドル" in one["title"]
    assert "\\u" not in lines.decode("utf-8")  # real UTF-8, not escapes


def test_limit_zero_exports_everything_and_conflicts_are_refused(
    db: str, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    _, out = run(capsysbinary, db, "--format", "jsonl", "--limit", "1")
    assert len(out.splitlines()) == 1
    _, out = run(capsysbinary, db, "--format", "jsonl", "--limit", "0")
    assert len(out.splitlines()) == 2
    code, _ = run(capsysbinary, db, "--json", "--format", "csv")
    assert code == 2
