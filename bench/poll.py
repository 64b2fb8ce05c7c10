"""Speed and scale of `watcher poll`: N synthetic feeds from a local server, against the feedparser floor.

    python bench/poll.py [--feeds 2000] [--latency 50] [--hosts 16] [--quick] [--profile]

What it does, in one run:

1. starts a feed server in its own process (a raw asyncio HTTP/1.1 server with keep-alive, so its CPU is not
   the watcher's and it is not the bottleneck: its CPU time is printed per phase). It serves N feeds of 50
   items each (RSS 2.0, summaries of 1-3 KB with some HTML, English and Japanese mixed, a few items written to
   match the shipped rules), spread over ``--hosts`` ports of 127.0.0.1 (watcher limits concurrency per host,
   so one port would measure the per-host limit, not the pipeline), with ETags and 304s;
2. measures the floor: feedparser parsing the same N bodies from memory, with the arguments watcher uses, and
   no network, storage or matching, just before and just after the first poll (the mean is used: load from
   other work on the machine drifts, and the bracket keeps the ratio about the code);
3. runs `watcher poll`'s own code in-process (``watcher.cli.poll._poll``: sync feeds, fetch, parse, match, one
   SQLite transaction per feed with new entries and one per group of 304s, deliver, health check) on a fresh
   SQLite file: (a) first poll, all new; (b) second poll, all
   304; (c) after each feed gains 5 items (the feed keeps its newest 50); (d) an all-304 poll with
   ``--latency`` ms added by the server to every response. In-process so the figures are the poll's, not the
   interpreter's start-up (about 0.5 s to import and 1-2 s to load a 2,000-feed feeds.yaml, printed apart);
4. prints wall time, CPU time (all threads of this process), peak RSS (ru_maxrss, the process's high-water
   mark so far) and the ratio of CPU time to the floor's, then checks the targets of issue 4.

``--profile`` then repeats the first and the all-304 poll under cProfile (one profiler per thread, timed with
``time.thread_time`` so a thread waiting for the GIL costs nothing) and prints where the CPU time goes, by
area and by function.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import dataclasses
import gc
import hashlib
import http.client
import io
import logging
import multiprocessing
import os
import pstats
import random
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ITEMS = 50
NEW_ITEMS = 5

# --- synthetic feeds ---------------------------------------------------------------------------------------

_EN = (
    "The company said the new cluster would come online next year, with capacity added in phases across "
    "several regions. Analysts expect the agreement to shift the balance of the market for accelerators. "
    "Executives declined to give a timeline for the second phase, citing supply constraints and permitting. "
    "Power remains the limiting factor: the sites under construction need grid connections that utilities "
    "say will take years. Customers have been asking for more regional availability and for lower prices. "
)
_JA = (
    "同社は新しいクラスターを来年稼働させる計画で、複数の地域で段階的に容量を追加すると説明した。"
    "アナリストは今回の合意がアクセラレーター市場の勢力図を変えるとみている。"
    "経営陣は供給制約や許認可を理由に、第2段階の時期については明言を避けた。"
    "電力が最大の制約で、建設中の拠点には送電網への接続が必要だが、電力会社は数年かかるとしている。"
)
_TITLES_EN = (
    "Quarterly update on regional availability",
    "New developer tools announced at the annual conference",
    "How the team rebuilt its storage layer",
    "Partner program expands to new markets",
)
_TITLES_JA = (
    "地域展開に関する四半期報告",
    "年次カンファレンスで新しい開発者ツールを発表",
    "ストレージ層の再構築について",
)
# Written to match the shipped rules (compute-deal-size and friends): about one item in fifty.
_MATCHING = (
    "Anthropic commits $30 billion to Azure compute capacity in new partnership",
    "Anthropic、Azureの演算能力を最大300億ドル分購入へ 契約を締結",
    "Nvidia to invest up to $10 billion in Anthropic; 1 GW of compute planned",
)


def _paragraph(rng: random.Random, japanese: bool) -> str:
    """A 1-3 KB HTML summary."""
    size = rng.randint(1000, 3000)
    base = _JA if japanese else _EN
    start = rng.randrange(len(base))
    text = (base * (1 + size // len(base.encode()) * 2))[start:]
    out, used = [], 0
    for sentence in text.split("。" if japanese else ". "):
        if not sentence:
            continue
        piece = f"<p>{escape(sentence)}{'。' if japanese else '.'} <a href='https://example.com/more'>more</a></p>"
        out.append(piece)
        used += len(piece.encode())
        if used >= size:
            break
    return "".join(out)


def feed_body(i: int, version: int, epoch: datetime) -> bytes:
    """Feed i: items k = 0..54 exist, newest first; version 1 shows 5..54, version 2 shows 0..49."""
    first = NEW_ITEMS if version == 1 else 0
    japanese_feed = i % 3 == 0
    parts = [
        '<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel>',
        f"<title>Synthetic feed {i}</title><link>https://site{i}.example/</link>",
        "<description>bench</description>",
    ]
    for k in range(first, first + ITEMS):
        rng = random.Random(i * 1000 + k)
        japanese = japanese_feed or rng.random() < 0.2
        if rng.random() < 0.02:
            title = rng.choice(_MATCHING)
        else:
            title = rng.choice(_TITLES_JA if japanese else _TITLES_EN) + f" #{k}"
        # the 5 new items are minutes old (they may alert); the others days old (a first poll's backlog)
        when = epoch - (timedelta(minutes=10 * k) if k < NEW_ITEMS else timedelta(days=3, hours=k))
        parts.append(
            f"<item><title>{escape(title)}</title><link>https://site{i}.example/p/{k}</link>"
            f'<guid isPermaLink="false">feed{i}-item{k}</guid><pubDate>{format_datetime(when)}</pubDate>'
            f"<description><![CDATA[{_paragraph(rng, japanese)}]]></description></item>"
        )
    parts.append("</channel></rss>\n")
    return "\n".join(parts).encode()


# --- the feed server (its own process) --------------------------------------------------------------------


@dataclass
class _ServerState:
    n: int
    epoch: datetime
    version: int = 0
    latency: float = 0.0
    bodies: dict[bytes, tuple[bytes, bytes]] | None = None
    served: int = 0
    not_modified: int = 0
    connections: int = 0

    def set_version(self, version: int) -> None:
        if version == self.version:
            return
        bodies = {}
        for i in range(self.n):
            body = feed_body(i, version, self.epoch)
            bodies[f"/f/{i}.xml".encode()] = (body, b'"' + hashlib.sha1(body).hexdigest()[:16].encode() + b'"')
        self.bodies, self.version = bodies, version


async def _handle(state: _ServerState, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    state.connections += 1
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            target = lines[0].split(b" ")[1]
            inm = None
            for line in lines[1:]:
                if line[:14].lower() == b"if-none-match:":
                    inm = line[14:].strip()
            if target.startswith(b"/_ctl"):
                query = dict(p.split("=", 1) for p in target.decode().partition("?")[2].split("&") if "=" in p)
                if "version" in query:
                    state.set_version(int(query["version"]))
                if "latency" in query:
                    state.latency = float(query["latency"])
                reply = f"{time.process_time()} {state.served} {state.not_modified} {state.connections}".encode()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(reply), reply))
                await writer.drain()
                continue
            if state.latency:
                await asyncio.sleep(state.latency)
            state.served += 1
            assert state.bodies is not None
            entry = state.bodies.get(target)
            if entry is None:
                writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            elif inm == entry[1]:
                state.not_modified += 1
                writer.write(b"HTTP/1.1 304 Not Modified\r\nETag: %s\r\n\r\n" % entry[1])
            else:
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml; charset=utf-8\r\n"
                    b"Content-Length: %d\r\nETag: %s\r\n\r\n%s" % (len(entry[0]), entry[1], entry[0])
                )
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
        pass
    finally:
        writer.close()


def _serve(n: int, hosts: int, epoch: datetime, ready: Any) -> None:
    state = _ServerState(n, epoch)
    state.set_version(1)

    async def main() -> None:
        servers = [
            await asyncio.start_server(lambda r, w: _handle(state, r, w), "127.0.0.1", 0, backlog=1024)
            for _ in range(hosts)
        ]
        ready.send([s.sockets[0].getsockname()[1] for s in servers])
        await asyncio.Event().wait()

    asyncio.run(main())


class FeedServerProcess:
    def __init__(self, n: int, hosts: int, epoch: datetime) -> None:
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        self.proc = ctx.Process(target=_serve, args=(n, hosts, epoch, child), daemon=True)
        self.proc.start()
        if not parent.poll(600):
            raise RuntimeError("feed server did not start")
        self.ports: list[int] = parent.recv()

    def control(self, **params: Any) -> tuple[float, int, int, int]:
        """Change version/latency; returns (server CPU seconds, requests served, 304s sent, connections)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.ports[0], timeout=600)
        conn.request("GET", "/_ctl?" + "&".join(f"{k}={v}" for k, v in params.items()))
        cpu, served, nm, connections = conn.getresponse().read().decode().split()
        conn.close()
        return float(cpu), int(served), int(nm), int(connections)

    def url(self, i: int) -> str:
        return f"http://127.0.0.1:{self.ports[i % len(self.ports)]}/f/{i}.xml"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.join(5)


# --- measuring --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Measure:
    label: str
    wall: float
    cpu: float
    peak_mb: float
    server_cpu: float = 0.0
    note: str = ""
    connections: int = 0  # TCP connections the server accepted during the phase


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


WATCHER_ARGS: dict[str, Any] = {"sanitize_html": True, "resolve_relative_uris": False}
"""What watcher's parse passes to feedparser (parse.py); the floor uses the same, so the ratio is the pipeline's
own overhead, not a difference in what feedparser is asked to do."""


def _feedparser(body: bytes, **kwargs: Any) -> Any:
    import feedparser

    from watcher.parse import neutralise_entities

    return feedparser.parse(
        io.BytesIO(neutralise_entities(body)),
        response_headers={"content-type": "application/rss+xml; charset=utf-8"},
        **kwargs,
    )


def measure_floor(n: int, epoch: datetime) -> Measure:
    cpu = wall = 0.0
    entries = 0
    for i in range(n):
        body = feed_body(i, 1, epoch)  # made outside the timed part
        t0, c0 = time.perf_counter(), time.process_time()
        d = _feedparser(body, **WATCHER_ARGS)
        cpu += time.process_time() - c0
        wall += time.perf_counter() - t0
        entries += len(d.entries)
    assert entries == n * ITEMS, entries
    return Measure("floor: feedparser from memory", wall, cpu, peak_mb(), note=f"{entries:,} entries")


def floor_variants(epoch: datetime, sample: int = 60) -> str:
    """What feedparser's own options cost, per feed, on a sample: context for the floor."""
    bodies = [feed_body(i, 1, epoch) for i in range(sample)]
    out = []
    for label, kwargs in (
        ("feedparser defaults", {}),
        ("watcher's arguments (the floor)", WATCHER_ARGS),
        ("without sanitising", {"sanitize_html": False, "resolve_relative_uris": False}),
    ):
        c0 = time.process_time()
        for b in bodies:
            _feedparser(b, **kwargs)
        out.append(f"{label} {(time.process_time() - c0) / sample * 1000:.1f} ms")
    return "feedparser CPU per 50-item feed: " + "; ".join(out)


def run_poll(label: str, config: Any, db: str, server: FeedServerProcess) -> Measure:
    """One `watcher poll` cycle, in-process, its output discarded."""
    from watcher.cli.poll import _poll
    from watcher.store import Store

    gc.collect()
    s_cpu0, _, _, conn0 = server.control()
    out = io.StringIO()
    store = Store.open(db)
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(out):
            asyncio.run(_poll(config, store))
    finally:
        store.close()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    s_cpu1, _, _, conn1 = server.control()
    summary = out.getvalue().strip().splitlines()[0] if out.getvalue().strip() else ""
    return Measure(label, wall, cpu, peak_mb(), s_cpu1 - s_cpu0, summary, conn1 - conn0 - 1)


def run_cli(label: str, feeds_path: Path, db: str) -> Measure:
    """`watcher poll` as the user runs it: a new interpreter (imports, config loading and all), its own rusage."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHER_")}
    cmd = [sys.executable, "-m", "watcher", "--feeds", str(feeds_path), "--rules", str(ROOT / "rules.yaml")]
    cmd += ["--db", db, "poll"]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    summary = next((line for line in err.splitlines() if line.startswith("polled ")), err.strip()[-200:])
    return Measure(label, wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, note=summary)


# --- profiling --------------------------------------------------------------------------------------------


class ThreadProfiles:
    """cProfile in every thread started while it runs (the parse and database worker threads), plus this one."""

    def __init__(self) -> None:
        self.profiles: list[cProfile.Profile] = []
        self._lock = threading.Lock()

    def _hook(self, frame: Any, event: str, arg: Any) -> None:
        sys.setprofile(None)
        p = cProfile.Profile(time.thread_time)
        with self._lock:
            self.profiles.append(p)
        p.enable()

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        main = cProfile.Profile(time.thread_time)
        threading.setprofile(self._hook)
        main.enable()
        try:
            yield
        finally:
            main.disable()
            threading.setprofile(None)  # type: ignore[arg-type]
            self.profiles.insert(0, main)

    def stats(self) -> pstats.Stats:
        stats = pstats.Stats(self.profiles[0])
        for p in self.profiles[1:]:
            stats.add(p)
        return stats


AREAS = (
    ("feedparser (XML, sanitiser, dates)", ("feedparser", "sgmllib", "xml/", "xml.sax", "expat")),
    ("plain text (html_to_text)", ("watcher/text.py", "html/parser", "_markupbase")),
    ("rules (match)", ("watcher/rules",)),
    ("SQLAlchemy + sqlite3", ("sqlalchemy", "sqlite3")),
    ("httpx / httpcore / h11", ("httpx", "httpcore", "h11", "anyio", "ssl")),
    ("asyncio event loop", ("asyncio", "selectors")),
    ("watcher pipeline/parse/store", ("watcher/",)),
)


def area_of(filename: str) -> str:
    if filename.startswith("<") or filename == "~":
        return "builtins (C calls: re, str, decode...)"
    for name, needles in AREAS:
        if any(n in filename for n in needles):
            return name
    return "other"


def print_profile(title: str, stats: pstats.Stats, top: int = 15) -> None:
    raw: dict[tuple[str, int, str], tuple[int, int, float, float, Any]] = stats.stats  # type: ignore[attr-defined]
    total = sum(v[2] for v in raw.values())
    by_area: dict[str, float] = {}
    for (filename, _, _), (_, _, tottime, _, _) in raw.items():
        by_area[area_of(filename)] = by_area.get(area_of(filename), 0.0) + tottime
    print(f"\n{title}: {total:.2f} s of thread CPU under cProfile (profiling inflates it; shares are what count)")
    for area, t in sorted(by_area.items(), key=lambda x: -x[1]):
        print(f"  {t / total:6.1%}  {t:7.2f} s  {area}")
    print(f"  top {top} functions by own time:")
    rows = sorted(raw.items(), key=lambda kv: -kv[1][2])[:top]
    for (filename, line, func), (_, calls, tottime, _cumtime, _) in rows:
        short = "/".join(Path(filename).parts[-2:]) if not filename.startswith("<") else filename
        print(f"  {tottime / total:6.1%} {tottime:6.2f} s  {calls:>9,} calls  {func} ({short}:{line})")


# --- main -------------------------------------------------------------------------------------------------


def write_config(tmp: Path, server: FeedServerProcess, n: int) -> Path:
    lines = ["defaults:", "  interval: 15m", "  timeout: 30s", "  deadline: 120s", "feeds:"]
    for i in range(n):
        lines += [f"  - name: feed-{i:05d}", f"    url: {server.url(i)}"]
    path = tmp / "feeds.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def row(m: Measure, floor: Measure, n: int) -> str:
    rate = n / m.wall if m.wall else 0.0
    return (
        f"{m.label:<34} {m.wall:8.2f} {m.cpu:8.2f} {m.cpu / floor.cpu:7.2f}x {rate:9,.0f} {m.peak_mb:8.0f}"
        f" {m.server_cpu:8.2f}"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--feeds", type=int, default=2000, metavar="N", help="number of feeds (default 2000)")
    p.add_argument("--latency", type=float, default=50, metavar="MS", help="latency of the last phase (default 50)")
    p.add_argument("--hosts", type=int, default=16, help="ports the feeds are spread over (default 16)")
    p.add_argument("--quick", action="store_true", help="N=200: a check in well under a minute")
    p.add_argument("--profile", action="store_true", help="then profile the first and the all-304 poll")
    args = p.parse_args(argv)
    n = 200 if args.quick else args.feeds

    from watcher.cli.common import setup_logging
    from watcher.config import load_config

    epoch = datetime.now(UTC).replace(microsecond=0)
    print(
        f"watcher bench/poll.py: {n} feeds x {ITEMS} items, {args.hosts} hosts, Python {sys.version.split()[0]}, "
        f"{os.cpu_count()} CPUs"
    )
    started = time.perf_counter()
    server = FeedServerProcess(n, args.hosts, epoch)
    print(f"feed server up in {time.perf_counter() - started:.1f}s (pid {server.proc.pid}, ports {server.ports[0]}..)")
    # `watcher poll` logs one INFO line per feed: keep that cost, send the lines nowhere.
    setup_logging("INFO")
    for h in logging.getLogger().handlers:
        if isinstance(h, logging.StreamHandler):
            h.setStream(open(os.devnull, "w"))  # noqa: SIM115
    try:
        with tempfile.TemporaryDirectory(prefix="watcher-bench-") as tmp_name:
            tmp = Path(tmp_name)
            feeds_path = write_config(tmp, server, n)
            t0 = time.perf_counter()
            config = load_config(feeds_path, ROOT / "rules.yaml")
            load_s = time.perf_counter() - t0
            concurrency = config.feeds.defaults.concurrency
            print(
                f"feeds.yaml ({n} feeds) + rules.yaml loaded in {load_s:.2f}s (not counted below); "
                f"concurrency {concurrency}, per host {config.feeds.defaults.per_host}\n"
            )

            # The floor is measured just before and just after the first poll, and averaged: other work on the
            # machine drifts over minutes, and bracketing the poll keeps the ratio about the code, not the load.
            db = str(tmp / "watcher.db")
            before = measure_floor(n, epoch)
            first = run_poll("first poll (all new)", config, db, server)
            after = measure_floor(n, epoch)
            floor = Measure(
                before.label,
                (before.wall + after.wall) / 2,
                (before.cpu + after.cpu) / 2,
                max(before.peak_mb, after.peak_mb),
                note=f"floor CPU {before.cpu:.2f}s before the first poll, {after.cpu:.2f}s after; mean used",
            )
            # Three all-304 cycles (a few seconds each): the median is reported, all three are printed.
            runs = sorted(
                (run_poll("second poll (all 304)", config, db, server) for _ in range(3)), key=lambda m: m.wall
            )
            second = dataclasses.replace(
                runs[1], note=runs[1].note + " [median of 3: " + ", ".join(f"{n / m.wall:,.0f}/s" for m in runs) + "]"
            )
            server.control(version=2)
            third = run_poll(f"after +{NEW_ITEMS} items per feed", config, db, server)
            phases = [first, second, third]
            slow = None
            if args.latency > 0:
                server.control(latency=args.latency / 1000)
                slow = run_poll(f"all 304, {args.latency:g} ms latency", config, db, server)
                server.control(latency=0)
                phases.append(slow)
            cli = run_cli("`watcher poll` subprocess, all 304", feeds_path, db)

            print(
                f"{'phase':<34} {'wall s':>8} {'CPU s':>8} {'/floor':>8} {'feeds/s':>9} {'peak MB':>8} {'srv CPU':>8}"
            )
            print(
                f"{floor.label:<34} {floor.wall:8.2f} {floor.cpu:8.2f} {1:7.2f}x {n / floor.wall:9,.0f}"
                f" {floor.peak_mb:8.0f} {'-':>8}"
            )
            for m in phases:
                print(row(m, floor, n))
            print(
                f"{cli.label:<34} {cli.wall:8.2f} {cli.cpu:8.2f} {cli.cpu / floor.cpu:7.2f}x {n / cli.wall:9,.0f}"
                f" {cli.peak_mb:8.0f} {'-':>8}"
            )
            print()
            for m in phases:
                print(f"  {m.label}: {m.note}; {m.connections} connections opened")
            print(f"  {cli.label}: {cli.note} (includes start-up: imports, loading {n} feeds)")
            print(f"  {floor.note}")
            print("  " + floor_variants(epoch))

            peak = max(m.peak_mb for m in phases)
            checks = [
                (
                    f"first poll CPU within 1.5x the floor's ({first.cpu / floor.cpu:.2f}x)",
                    first.cpu <= 1.5 * floor.cpu,
                ),
                (f"all-304 poll over 1,000 feeds/s ({n / second.wall:,.0f}/s)", n / second.wall > 1000),
                (f"peak memory under 250 MB ({peak:.0f} MB)", peak < 250),
            ]
            if slow is not None:
                bound = 1.5 * n * (args.latency / 1000) / concurrency
                checks.insert(
                    2,
                    (
                        f"{args.latency:g} ms latency: wall within 1.5 x N x latency / concurrency = {bound:.2f}s "
                        f"({slow.wall:.2f}s)",
                        slow.wall <= bound,
                    ),
                )
            print()
            for text, ok in checks:
                print(f"  [{'PASS' if ok else 'FAIL'}] {text}")

            if args.profile:
                server.control(version=1)
                pdb = str(tmp / "profile.db")
                for label in ("first poll (all new)", "second poll (all 304)"):
                    prof = ThreadProfiles()
                    with prof.running():
                        m = run_poll(label, config, pdb, server)
                    print_profile(f"profile of the {label} ({m.note})", prof.stats())
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
