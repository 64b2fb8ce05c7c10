"""The outbox against real servers: a real SMTP server (AUTH + STARTTLS) and real webhook receivers on loopback.

The deliverer's clock is injected (tests/alerting.py Clock): retries, digests and quiet hours are reached by
moving the clock, never by sleeping.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import UTC, datetime
from datetime import time as dtime
from pathlib import Path

import pytest
from alerting import Clock, add_alerts, deliverer, dest
from servers import SmtpServer, TlsCert, WebhookReceiver

from watcher.notify import Sender
from watcher.notify.alertdb import AlertDB
from watcher.notify.lock import DeliveryLock
from watcher.notify.policy import DigestSchedule, PolicyOverride, QuietHours
from watcher.store import Store


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store.open(str(tmp_path / "w.db"))
    yield s
    s.close()


@pytest.fixture
def secure_smtp(tls_cert: TlsCert) -> SmtpServer:
    with SmtpServer(auth=("alertuser", "S3cretPW-smtp"), tls_cert=tls_cert) as server:
        yield server


def drain(d, **kw):  # type: ignore[no-untyped-def]
    return asyncio.run(d.deliver_pending(**kw))


def titles_of_mail(smtp: SmtpServer) -> Counter[str]:
    return Counter(str(m["subject"]).split(": ", 1)[1] for m in smtp.messages)


def titles_of_hooks(hook: WebhookReceiver) -> Counter[str]:
    return Counter(r.body["title"].split(": ", 1)[1] for r in hook.received)


def test_outage_then_recovery_delivers_every_alert_exactly_once(
    store: Store, secure_smtp: SmtpServer, webhook: WebhookReceiver
) -> None:
    clock = Clock()
    d = deliverer(store, [dest("mail", secure_smtp.apprise_url()), dest("hook", webhook.apprise_url())], clock)
    titles = add_alerts(store, 6, ["mail", "hook"])
    secure_smtp.stop()
    webhook.stop()
    started = time.monotonic()
    report = drain(d)
    assert report.sent == 0 and report.failed == 2  # one failure per destination; the other alerts wait
    assert time.monotonic() - started < 10  # a destination that is down costs one attempt per drain, not one per alert
    rows = AlertDB(store).listing("pending")
    assert len(rows) == 12 and all(r["next_attempt_at"] for r in rows)
    failed = [r for r in rows if r["attempts"] == 1]
    assert {r["destination"] for r in failed} == {"mail", "hook"}
    for r in failed:
        (t,) = r["targets"]
        assert t["state"] == "failed" and t["target"] in ("mail[0] (mailtos://)", "hook[0] (json://)") and t["error"]
        assert "S3cretPW" not in t["error"]
    clock.advance(hours=1)
    assert drain(d).sent == 0  # still down
    secure_smtp.start()
    webhook.start()
    clock.advance(hours=1)
    report = drain(d)
    assert report.sent == 12 and report.failed == 0
    clock.advance(days=1)
    assert drain(d).sent == 0  # and nothing more, ever
    assert titles_of_mail(secure_smtp) == Counter(titles)
    assert titles_of_hooks(webhook) == Counter(titles)
    assert all(e.tls and e.login == "alertuser" for e in secure_smtp.envelopes)  # STARTTLS + AUTH, really
    assert AlertDB(store).counts() == {"sent": 12}


def test_500_then_200_retries_only_the_url_that_failed(store: Store, webhook: WebhookReceiver) -> None:
    clock = Clock()
    with WebhookReceiver() as second:
        d = deliverer(store, [dest("hooks", webhook.apprise_url(), second.apprise_url("/other"))], clock)
        (title,) = add_alerts(store, 1, ["hooks"])
        webhook.fail_next(1, status=500)
        report = drain(d)
        assert report.failed == 1 and len(second.received) == 1 and not webhook.received
        (row,) = AlertDB(store).listing()
        assert row["state"] == "pending" and row["attempts"] == 1 and "500" in row["last_error"]
        states = {t["target"]: t["state"] for t in row["targets"]}
        assert states == {"hooks[0] (json://)": "failed", "hooks[1] (json://)": "sent"}
        drain(d)
        assert not webhook.received  # backoff: not due yet
        clock.advance(minutes=2)
        assert drain(d).sent == 1
        assert [r.body["title"] for r in webhook.received] == [f"big-compute: {title}"]
        assert len(second.received) == 1  # the URL that took it the first time is not sent it again
        assert len(webhook.requests) == 2
    (row,) = AlertDB(store).listing("sent")
    assert {t["target"]: (t["state"], t["attempts"]) for t in row["targets"]} == {
        "hooks[0] (json://)": ("sent", 2),
        "hooks[1] (json://)": ("sent", 1),
    }


def test_a_hanging_destination_holds_up_only_itself(
    store: Store, smtp_server: SmtpServer, webhook: WebhookReceiver
) -> None:
    clock = Clock()
    d = deliverer(
        store,
        [dest("mail", smtp_server.apprise_url()), dest("hook", webhook.apprise_url())],
        clock,
        sender=Sender(timeout=1.5),
    )
    titles = add_alerts(store, 3, ["mail", "hook"])
    webhook.hang_next(3, seconds=8)
    started = time.monotonic()
    report = drain(d)
    took = time.monotonic() - started
    assert took < 6, took  # bounded by the send timeout, once, not once per alert
    assert report.sent == 3 and report.failed == 1
    assert titles_of_mail(smtp_server) == Counter(titles)
    hook_rows = [r for r in AlertDB(store).listing() if r["destination"] == "hook"]
    assert sum("TIMEOUT" in (r["last_error"] or "") for r in hook_rows) == 3  # 1 timed out, 2 wait for it
    webhook.clear()
    clock.advance(minutes=5)
    assert drain(d).sent == 3
    assert titles_of_hooks(webhook) == Counter(titles)


def test_quiet_hours_and_rate_limit_move_alerts_into_a_digest(store: Store, webhook: WebhookReceiver) -> None:
    clock = Clock()  # 12:00 UTC
    hook = dest(
        "hook",
        webhook.apprise_url(),
        rate_limit=2,
        quiet_hours=QuietHours(dtime(22), dtime(7), "UTC"),
        digest=DigestSchedule(every=3600),
    )
    d = deliverer(store, [hook], clock)
    day = add_alerts(store, 5, ["hook"], now=clock.at)
    report = drain(d)
    assert (report.sent, report.held) == (2, 3)  # two instant, the excess held for the next digest
    assert len(webhook.received) == 2
    held = AlertDB(store).listing("pending")
    assert {r["held_for"] for r in held} == {"rate_limit"} and len(held) == 3
    clock.advance(minutes=59)
    assert drain(d).sent == 0
    clock.advance(minutes=1)  # 13:00: the hourly digest
    assert drain(d).sent == 3
    digest = webhook.received[-1].body
    assert digest["title"] == "watcher digest: 3 alerts"
    assert all(t in digest["message"] for t in day[2:])  # decided in order: the first two went instant

    clock.at = clock.at.replace(hour=23)  # quiet hours
    webhook.clear()
    night = add_alerts(store, 3, ["hook"], now=clock.at)
    (urgent,) = add_alerts(store, 1, ["hook"], now=clock.at, severity="urgent", rule="capacity")
    report = drain(d)
    assert (report.sent, report.held) == (1, 3)
    assert [r.body["title"] for r in webhook.received] == [f"[URGENT] capacity: {urgent}"]  # urgent bypasses
    rows = AlertDB(store).listing("pending")
    assert {r["held_for"] for r in rows} == {"quiet_hours"}
    assert {r["next_attempt_at"] for r in rows} == {"2026-11-28T07:00:00Z"}
    clock.at = datetime(2026, 11, 28, 6, 59, tzinfo=UTC)
    assert drain(d).sent == 0
    clock.advance(minutes=1)
    assert drain(d).sent == 3
    (digest_msg,) = webhook.received[1:]
    assert digest_msg.body["title"] == "watcher digest: 3 alerts"
    assert all(t in digest_msg.body["message"] for t in night)
    assert AlertDB(store).counts() == {"sent": 9}  # nothing dropped


def test_rule_in_digest_mode_groups_by_watch_item_and_rule_newest_first(store: Store, webhook: WebhookReceiver) -> None:
    clock = Clock()
    d = deliverer(store, [dest("hook", webhook.apprise_url())], clock, rules={"calm": PolicyOverride(mode="digest")})
    a = add_alerts(store, 2, ["hook"], rule="calm", tags=["azure-supply"], title="Azure item {i}")
    b = add_alerts(store, 2, ["hook"], rule="calm", tags=["rival-deals"], title="Rival item {i}")
    (instant,) = add_alerts(store, 1, ["hook"], rule="loud")
    assert drain(d).sent == 1 and webhook.received[0].body["title"] == f"loud: {instant}"
    clock.advance(hours=1)
    assert drain(d).sent == 4
    text = webhook.received[-1].body["message"]
    order = [text.index(t) for t in (a[0], a[1], b[0], b[1])]
    # newest first inside a group (add_alerts publishes item i at now - i minutes); Azure's newest is the newest
    assert order[0] < order[1] and order[2] < order[3]
    assert text.index("== azure-supply") < text.index("== rival-deals")
    assert text.count("-- calm") == 2


def test_dead_letter_then_fallback_then_retry(store: Store, webhook: WebhookReceiver) -> None:
    clock = Clock()
    with WebhookReceiver() as backup:
        primary_url = webhook.apprise_url()
        webhook.stop()
        d = deliverer(
            store,
            [dest("primary", primary_url, max_attempts=2, fallback="backup"), dest("backup", backup.apprise_url())],
            clock,
        )
        (title,) = add_alerts(store, 1, ["primary"])
        assert drain(d).failed == 1
        clock.advance(hours=1)
        report = drain(d)
        assert report.dead == 1
        (dead,) = AlertDB(store).listing("dead")
        assert dead["destination"] == "primary" and dead["attempts"] == 2 and dead["last_error"]
        assert drain(d).sent == 1  # the copy queued for the fallback goes out on the next drain
        assert [r.body["title"] for r in backup.received] == [f"big-compute: {title}"]
        (copy,) = AlertDB(store).listing("sent")
        assert copy["destination"] == "backup" and copy["fallback_from"] == "primary"
        webhook.start()
        assert AlertDB(store).retry_all(clock()) == {"dead": 1, "pending": 0}
        assert drain(d).sent == 1
        assert len(webhook.received) == 1 and len(backup.received) == 1


def test_dead_letter_by_age(store: Store, webhook: WebhookReceiver) -> None:
    clock = Clock()
    webhook.stop()
    d = deliverer(store, [dest("hook", webhook.apprise_url(), max_age=3600)], clock)
    add_alerts(store, 1, ["hook"])
    drain(d)
    clock.advance(hours=2)
    assert drain(d).dead == 1


def test_two_processes_never_deliver_the_same_alert(tmp_path: Path, store: Store, webhook: WebhookReceiver) -> None:
    titles = add_alerts(store, 8, ["hook"])
    other = Store.open(str(tmp_path / "w.db"))
    lock = DeliveryLock.beside(store.sqlite_file)
    try:
        d1 = deliverer(store, [dest("hook", webhook.apprise_url())], Clock(), lock=lock)
        d2 = deliverer(
            other, [dest("hook", webhook.apprise_url())], Clock(), lock=DeliveryLock.beside(other.sqlite_file)
        )

        async def both():  # type: ignore[no-untyped-def]
            return await asyncio.gather(d1.deliver_pending(wait=10), d2.deliver_pending(wait=10))

        r1, r2 = asyncio.run(both())
    finally:
        other.close()
    assert r1.sent + r2.sent == 8
    assert titles_of_hooks(webhook) == Counter(titles)


def test_an_alert_for_a_removed_destination_is_kept_with_its_reason(store: Store) -> None:
    clock = Clock()
    d = deliverer(store, [], clock)
    add_alerts(store, 1, ["gone"])
    assert drain(d).failed == 1
    (row,) = AlertDB(store).listing("pending")
    assert "destination 'gone' is not configured" in row["last_error"]
