"""Every real feed of ../shared/corpus/real, served over HTTP, through `watcher poll` with the shipped rules."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from servers import FeedServer

ROOT = Path(__file__).resolve().parent.parent


def test_every_real_feed_goes_through_the_pipeline(tmp_path: Path, corpus_dir: Path, feed_server: FeedServer) -> None:
    files = sorted((corpus_dir / "real").glob("*.xml"))
    assert len(files) >= 20
    lines = ["defaults:", "  backfill_alert_window: 0s", "feeds:"]
    for f in files:
        ctype = "application/atom+xml" if b"<feed" in f.read_bytes()[:2000] else "application/rss+xml"
        url = feed_server.add(f"/{f.name}", f.read_bytes(), content_type=ctype)
        lines += [f"  - name: {f.stem}", f"    url: {url}"]
    (tmp_path / "feeds.yaml").write_text("\n".join(lines) + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHER_")}
    base = [
        sys.executable,
        "-m",
        "watcher",
        "--feeds",
        str(tmp_path / "feeds.yaml"),
        "--rules",
        str(ROOT / "rules.yaml"),
        "--db",
        str(tmp_path / "w.db"),
    ]
    out = subprocess.run([*base, "poll"], capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr
    assert f"{len(files)} ok, 0 not modified, 0 failed" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr and "internal error" not in out.stderr
    feeds = json.loads(
        subprocess.run([*base, "feeds", "--json"], capture_output=True, text=True, env=env, timeout=60).stdout
    )
    assert all(f["status"] == "ok" and f["entries"] > 0 for f in feeds)
    manifest = (
        {
            json.loads(x)["file"]: json.loads(x)
            for x in (corpus_dir / "real" / "MANIFEST.jsonl").read_text().splitlines()
            if x.strip()
        }
        if (corpus_dir / "real" / "MANIFEST.jsonl").exists()
        else {}
    )
    for f in feeds:
        expected = manifest.get(f"{f['name']}.xml", {}).get("items")
        if expected:
            assert f["entries"] <= expected  # never more entries than items (duplicates within a feed collapse)
    # the partnership items of 2025-11-18 are caught by the shipped rules
    hits = json.loads(
        subprocess.run(
            [*base, "hits", "--json", "--limit", "1000"], capture_output=True, text=True, env=env, timeout=60
        ).stdout
    )
    titles = {h["title"] for h in hits if h["feed"].startswith("olshansk_anthropic_news_2025")}
    assert any("Foundry" in t for t in titles), titles
