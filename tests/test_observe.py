"""The parts behind /healthz, /metrics, `watcher status` and JSON logs, each on real inputs: the health decision
with an injected clock, the snapshot and metrics on a real SQLite file, the HTTP server over a real socket."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from watcher.models import Entry, Hit, PollReport
from watcher.notify.alertdb import AlertDB
from watcher.observe.health import Health, Schedule, Timing, assess
from watcher.observe.http import HttpEndpoint, HttpError, Response, parse_address
from watcher.observe.logs import JsonFormatter
from watcher.observe.metrics import Metrics
from watcher.observe.reader import reader_engine
from watcher.observe.snapshot import FeedView, read_snapshot
from watcher.store import PollWrite, Store, feeds

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
# feed a is polled every 5 minutes (overdue 5m + 30s + 10s after its due time), b every 15 minutes
SCHEDULE = Schedule(feeds={"a": Timing(300.0, 30.0), "b": Timing(900.0, 60.0)}, start_spread=60.0)


def ago(seconds: float | None) -> datetime | None:
    return None if seconds is None else NOW - timedelta(seconds=seconds)


def view(
    name: str,
    *,
    success: float | None,
    poll: float | None = None,
    failures: int = 0,
    next_in: float | None = None,
    reason: str | None = None,
    error: str | None = None,
    gone: bool = False,
) -> FeedView:
    """A feed whose last success / last poll were that many seconds before NOW, next poll `next_in` from NOW."""
    last_poll = ago(poll if poll is not None else success)
    interval = SCHEDULE.feeds[name].interval
    if next_in is None and last_poll is not None:
        next_at = last_poll + timedelta(seconds=interval)  # polled on its interval
    else:
        next_at = None if next_in is None else NOW + timedelta(seconds=next_in)
    return FeedView(
        name=name,
        last_status=None if last_poll is None else ("failed" if failures else "ok"),
        last_http_status=200,
        last_poll_at=last_poll,
        last_success_at=ago(success),
        consecutive_failures=failures,
        failing_since=None,
        last_error=error,
        next_poll_at=next_at,
        next_poll_reason=reason or ("backoff" if failures else "interval"),
        gone_at=NOW if gone else None,
    )


def health(feeds: list[FeedView], *, started: float = 3600, running: bool = True, stopping: bool = False) -> Health:
    return assess(
        now=NOW,
        started_at=NOW - timedelta(seconds=started),
        running=running,
        stopping=stopping,
        schedule=SCHEDULE,
        feeds=feeds,
    )


def test_healthy_while_a_feed_is_polled_successfully_on_time() -> None:
    h = health([view("a", success=600), view("b", success=5000)])  # a: due 5m ago, overdue in 40s
    assert h.ok and h.status == "ok" and h.reason == "1 of 2 feeds fine; last success 10m ago"
    h = health([view("a", success=700), view("b", success=5000)])  # a: 20s past its slack
    assert not h.ok and h.status == "stale"


def test_a_cache_hold_is_not_a_stuck_daemon() -> None:
    """max-age asked for 4 h: the last success is old, but the next poll is not due yet."""
    h = health([view("a", success=3 * 3600, next_in=3600, reason="max-age"), view("b", success=5000)])
    assert h.ok and h.status == "ok"


def test_unhealthy_when_polls_run_but_every_feed_fails() -> None:
    feeds = [
        view("a", success=5000, poll=30, failures=3, next_in=120, error="HTTP 503"),
        view("b", success=None, poll=40, failures=1, next_in=800, error="timed out after 10s"),
    ]
    h = health(feeds)
    assert not h.ok and h.status == "failing"
    assert h.reason == "polls run but no feed is fine (last success 1h23m20s ago); latest: a: HTTP 503"
    assert h.body()["last_poll"] == "2026-11-27T11:59:30Z" and h.body()["ok"] is False


def test_stale_when_nothing_polls() -> None:
    h = health([view("a", success=4000), view("b", success=4000)])
    assert not h.ok and h.status == "stale" and "scheduler is stuck" in h.reason and "1h6m40s ago" in h.reason


def test_starting_stopping_stopped_and_idle() -> None:
    unpolled: list[FeedView] = []  # the store knows no feed yet
    assert health(unpolled, started=30).status == "starting" and health(unpolled, started=30).ok
    assert health(unpolled, started=60 + 300 + 30 + 10 + 1).status == "starting"  # b is not overdue yet
    assert health(unpolled, started=60 + 900 + 60 + 10 + 1).status == "stale"
    h = health([view("a", success=1)], stopping=True)
    assert not h.ok and h.status == "stopping"
    assert health([view("a", success=1)], running=False).status == "stopped"
    idle = assess(now=NOW, started_at=NOW, running=True, stopping=False, schedule=Schedule({}, 0.0), feeds=[])
    assert idle.ok and idle.status == "idle"
    gone = health([view("a", success=9000, gone=True), view("b", success=9000, gone=True)])
    assert gone.ok and gone.status == "idle" and "410" in gone.reason


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store.open(str(tmp_path / "w.db"))
    yield s  # type: ignore[misc]
    s.close()


def fill(store: Store) -> None:
    states = store.sync_feeds([("wire", "https://w/feed"), ("ja", "https://j/feed"), ("down", "https://d/")], NOW)
    h1 = Hit("big-compute", "v", ("compute-contracts", "azure-supply"), "notable", ("console",), ("billion",))
    h2 = Hit("anthropic-any", "v", (), "info", ("console", "slack"), ("anthropic",))
    store.record_poll(
        PollWrite(
            states["wire"].feed_id,
            NOW - timedelta(days=1),
            "https://w/feed",
            200,
            None,
            None,
            "W",
            [Entry("1", "Anthropic $30 billion", "https://w/1"), Entry("2", "noise", "https://w/2")],
            {"1": [h1, h2]},
            None,
        )
    )
    store.record_poll(
        PollWrite(
            states["ja"].feed_id,
            NOW - timedelta(minutes=5),
            "https://j/feed",
            200,
            None,
            None,
            "J",
            [Entry("3", "300億ドル 演算", "https://j/3")],
            {"3": [h1]},
            None,
        )
    )
    store.record_failure(states["down"].feed_id, NOW - timedelta(minutes=1), 503, "HTTP 503")
    outbox = AlertDB(store)
    pending = outbox.due(NOW, limit=1)[0]
    outbox.mark_failed(
        pending.id, attempts=1, error="slack down", next_attempt_at=NOW + timedelta(minutes=5), dead=False, now=NOW
    )


def test_snapshot_reads_the_store_without_the_write_lock(store: Store) -> None:
    fill(store)
    reader = reader_engine(store.engine.url)
    try:
        with store.begin() as writing:  # the daemon holds the write lock...
            writing.exec_driver_sql("update feeds set title='x'")
            with reader.connect() as conn:  # ...and a report still reads, at once
                snap = read_snapshot(conn, NOW)
    finally:
        reader.dispose()
    assert snap.feeds_by_state() == {"ok": 2, "failing": 1, "backoff": 0, "disabled": 0, "never": 0}
    assert snap.entries == 3 and snap.hits == 3
    assert snap.hits_by_rule_item == {
        ("big-compute", "compute-contracts"): 2,
        ("big-compute", "azure-supply"): 2,
        ("anthropic-any", "-"): 1,
    }
    assert snap.hits_today == 1 and snap.hits_today_by_item == {"compute-contracts": 1, "azure-supply": 1}
    assert snap.alerts_by_state == {"pending": 4, "sent": 0, "dead": 0} and snap.alerts_retrying == 1
    assert snap.last_poll is not None and snap.last_poll.name == "down"


def test_feeds_backing_off_and_disabled(store: Store) -> None:
    """A feed held by a backoff or a Retry-After counts as backing off; a cache hold does not; 410: disabled."""
    fill(store)
    states = {s.name: s.feed_id for s in store.feed_states()}
    with store.begin() as conn:
        conn.execute(
            sa.update(feeds)
            .where(feeds.c.id == states["down"])
            .values(next_poll_at=NOW + timedelta(minutes=30), next_poll_reason="backoff")
        )
        conn.execute(
            sa.update(feeds)
            .where(feeds.c.id == states["wire"])
            .values(next_poll_at=NOW + timedelta(hours=3), next_poll_reason="max-age")
        )
        conn.execute(sa.update(feeds).where(feeds.c.id == states["ja"]).values(gone_at=NOW))
    reader = reader_engine(store.engine.url)
    try:
        with reader.connect() as conn:
            snap = read_snapshot(conn, NOW)
    finally:
        reader.dispose()
    assert snap.feeds_by_state() == {"ok": 1, "failing": 0, "backoff": 1, "disabled": 1, "never": 0}
    (down,) = [f for f in snap.feeds if f.name == "down"]
    assert down.next_poll_at == NOW + timedelta(minutes=30) and down.state(NOW + timedelta(hours=1)) == "failing"


def scrape(metrics: Metrics) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for s in family.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


def test_metrics_from_the_store_and_from_polls(store: Store) -> None:
    fill(store)
    reader = reader_engine(store.engine.url)

    def read():  # type: ignore[no-untyped-def]
        with reader.connect() as conn:
            return read_snapshot(conn, NOW)

    metrics = Metrics(read)
    metrics.observe_poll(PollReport("wire", "ok", 200, 2, 1, 1, 0.1))
    metrics.observe_poll(PollReport("down", "failed", 503, 0, 0, 0, 0.1, "HTTP 503"))
    metrics.fetch_duration.labels("fetched").observe(0.3)
    try:
        m = scrape(metrics)
    finally:
        reader.dispose()
    assert m["watcher_polls_total"] == {
        (("status", "ok"),): 1,
        (("status", "not-modified"),): 0,
        (("status", "failed"),): 1,
    }
    assert m["watcher_new_entries_total"] == {(): 2}
    assert m["watcher_fetch_duration_seconds_count"][(("result", "fetched"),)] == 1
    assert m["watcher_fetch_duration_seconds_bucket"][(("le", "0.5"), ("result", "fetched"))] == 1
    assert m["watcher_hits"][(("rule", "big-compute"), ("watch_item", "azure-supply"))] == 2
    assert m["watcher_alerts"][(("state", "pending"),)] == 4
    assert m["watcher_outbox_depth"] == {(): 4} and m["watcher_outbox_retrying"] == {(): 1}
    assert m["watcher_feeds"][(("state", "failing"),)] == 1 and m["watcher_feeds_in_backoff"] == {(): 0}
    assert m["watcher_entries"] == {(): 3} and m["watcher_database_up"] == {(): 1}
    assert "process_resident_memory_bytes" in m and "python_info" in m


def test_metrics_say_when_the_database_cannot_be_read(tmp_path: Path) -> None:
    reader = reader_engine(f"sqlite:///{tmp_path}/missing-dir/none.db")

    def read():  # type: ignore[no-untyped-def]
        with reader.connect() as conn:
            return read_snapshot(conn, NOW)

    try:
        m = scrape(Metrics(read, process=False))
    finally:
        reader.dispose()
    assert m["watcher_database_up"] == {(): 0} and "watcher_hits" not in m


def raw_http(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(request)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


def test_http_endpoint_over_a_real_socket() -> None:
    async def ok() -> Response:
        return Response(200, b'{"ok": true}', "application/json")

    async def boom() -> Response:
        raise RuntimeError("bug")

    async def scenario() -> list[tuple[int, dict[str, str], bytes]]:
        async with HttpEndpoint("127.0.0.1:0", {"/healthz": ok, "/boom": boom}) as ep:
            assert ep.port != 0
            reqs = [
                b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
                b"GET /healthz?verbose=1 HTTP/1.0\r\n\r\n",
                b"HEAD /healthz HTTP/1.1\r\n\r\n",
                b"POST /healthz HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
                b"GET /nope HTTP/1.1\r\n\r\n",
                b"GET /boom HTTP/1.1\r\n\r\n",
                b"garbage\r\n\r\n",
            ]
            return [await asyncio.to_thread(raw_http, ep.port, r) for r in reqs]

    results = asyncio.run(scenario())
    assert [r[0] for r in results] == [200, 200, 200, 405, 404, 500, 400]
    assert results[0][2] == b'{"ok": true}' and results[0][1]["Content-Type"] == "application/json"
    assert results[2][2] == b"" and results[2][1]["Content-Length"] == "12"  # HEAD: headers only
    assert results[3][1]["Allow"] == "GET, HEAD"


def test_http_address_errors() -> None:
    assert parse_address("127.0.0.1:8080") == ("127.0.0.1", 8080)
    assert parse_address("[::1]:9") == ("::1", 9)
    for bad in ("8080", "localhost", "host:http", ":80", "1.2.3.4:70000"):
        with pytest.raises(HttpError, match="expected HOST:PORT"):
            parse_address(bad)

    async def taken() -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            s.listen()
            ep = HttpEndpoint(f"127.0.0.1:{s.getsockname()[1]}", {})
            with pytest.raises(HttpError, match="cannot listen on"):
                await ep.start()

    asyncio.run(taken())


def test_json_log_lines_carry_the_extra_fields() -> None:
    record = logging.LogRecord("watcher.poll", logging.INFO, __file__, 1, "feed=%s status=%s", ("wire", "ok"), None)
    record.__dict__.update({"event": "poll", "feed": "wire", "status": "ok", "http": 200, "new": 2, "error": None})
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "feed=wire status=ok" and line["level"] == "INFO" and line["logger"] == "watcher.poll"
    assert (line["event"], line["feed"], line["http"], line["new"], line["error"]) == ("poll", "wire", 200, 2, None)
    assert line["ts"].endswith("Z") and "args" not in line and "msg" not in line
