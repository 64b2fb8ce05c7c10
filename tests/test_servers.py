"""The test servers behave as the other tests assume: conditional GET, failures on demand, real mail and webhooks."""

from __future__ import annotations

import gzip
import io
import socket
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import apprise
import feedparser
import httpx
import pytest
from servers import FeedServer, SmtpServer, TlsCert, WebhookReceiver, make_atom, make_rss

ITEMS = [
    {
        "guid": "a-1",
        "title": "Azure & <OpenAI> deal",
        "link": "http://example.com/a?x=1&y=2",
        "summary": "<p>$30 billion</p>",
        "published": datetime(2025, 6, 10, 12, 0, tzinfo=UTC),
    },
    {
        "guid": "b-2",
        "title": "ソフトバンクが300億ドルを投資",
        "link": "http://example.com/b",
        "summary": "1兆円規模",
        "published": datetime(2025, 6, 10, 21, 0, tzinfo=timezone(timedelta(hours=9))),
    },
]


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


# -- FeedServer ------------------------------------------------------------------------------------------------


def test_conditional_get_answers_304_for_matching_etag(feed_server: FeedServer) -> None:
    url = feed_server.add("/feed.xml", make_rss(ITEMS), last_modified="Tue, 10 Jun 2025 12:00:00 GMT")
    with httpx.Client() as client:
        first = client.get(url)
        etag = first.headers["etag"]
        second = client.get(url, headers={"If-None-Match": etag})
        by_date = client.get(url, headers={"If-Modified-Since": "Tue, 10 Jun 2025 12:00:00 GMT"})
        stale = client.get(url, headers={"If-None-Match": '"something-else"'})
    assert first.status_code == 200 and first.content.startswith(b"<?xml")
    assert second.status_code == 304 and second.content == b"" and second.headers["etag"] == etag
    assert by_date.status_code == 304
    assert stale.status_code == 200
    assert feed_server.count("/feed.xml") == 4
    assert feed_server.last_headers("/feed.xml")["if-none-match"] == '"something-else"'


def test_replacing_body_changes_etag(feed_server: FeedServer) -> None:
    url = feed_server.add("/feed.xml", make_rss(ITEMS[:1]))
    with httpx.Client() as client:
        old = client.get(url).headers["etag"]
        feed_server.add("/feed.xml", make_rss(ITEMS))
        response = client.get(url, headers={"If-None-Match": old})
    assert response.status_code == 200
    assert response.headers["etag"] != old
    assert response.headers["etag"] == feed_server.etag("/feed.xml")


def test_hang_blocks_neither_other_routes_nor_stop() -> None:
    server = FeedServer().start()
    server.add("/hang.xml", "never", hang=30)
    ok_url = server.add("/ok.xml", "fine")
    errors: list[Exception] = []

    def fetch_hanging() -> None:
        try:
            with httpx.Client(timeout=10) as client:
                client.get(server.url_for("/hang.xml"))
        except httpx.HTTPError as e:
            errors.append(e)

    client_thread = threading.Thread(target=fetch_hanging)
    client_thread.start()
    deadline = time.monotonic() + 5
    while server.count("/hang.xml") == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.count("/hang.xml") == 1
    assert httpx.get(ok_url).text == "fine"  # served while the other request hangs

    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 2
    client_thread.join(5)
    assert not client_thread.is_alive()
    assert len(errors) == 1  # the hanging request ended without a response
    assert _refused(server.port)


def test_feed_server_restarts_on_same_port(feed_server: FeedServer) -> None:
    url = feed_server.add("/feed.xml", "up")
    feed_server.stop()
    assert _refused(feed_server.port)
    feed_server.start()
    assert httpx.get(url).text == "up"


def test_gzip_route_sends_gzip_bytes(feed_server: FeedServer) -> None:
    body = make_rss(ITEMS)
    url = feed_server.add("/feed.xml", body, gzip=True)
    with httpx.Client() as client, client.stream("GET", url) as response:
        raw = b"".join(response.iter_raw())
    assert response.headers["content-encoding"] == "gzip"
    assert raw[:2] == b"\x1f\x8b"
    assert gzip.decompress(raw).decode() == body


def test_failures_redirects_and_unknown_paths(feed_server: FeedServer) -> None:
    feed_server.add("/down.xml", "maintenance", status=503, retry_after="120")
    feed_server.add("/old.xml", redirect_to="/new.xml")
    feed_server.add("/new.xml", "moved here")
    feed_server.add("/cut.xml", "x" * 10_000, reset_after=100)
    with httpx.Client() as client:
        down = client.get(feed_server.url_for("/down.xml"))
        moved = client.get(feed_server.url_for("/old.xml"))
        followed = client.get(feed_server.url_for("/old.xml"), follow_redirects=True)
        missing = client.get(feed_server.url_for("/nope.xml"))
        with pytest.raises(httpx.HTTPError):
            client.get(feed_server.url_for("/cut.xml"))
    assert (down.status_code, down.text, down.headers["retry-after"]) == (503, "maintenance", "120")
    assert (moved.status_code, moved.headers["location"]) == (301, feed_server.url_for("/new.xml"))
    assert followed.text == "moved here"
    assert missing.status_code == 404

    feed_server.behave("/down.xml", status=200, retry_after=None)
    assert httpx.get(feed_server.url_for("/down.xml")).status_code == 200


def test_trickle_sends_the_body_slowly(feed_server: FeedServer) -> None:
    url = feed_server.add("/slow.xml", "abcdef", trickle=(2, 0.1))
    started = time.monotonic()
    assert httpx.get(url).text == "abcdef"
    assert time.monotonic() - started >= 0.2


# -- SmtpServer ------------------------------------------------------------------------------------------------


def _notify(url: str, title: str = "Hit: azure-power", body: str = "Azure & OpenAI: $30 billion") -> bool:
    apobj = apprise.Apprise()
    assert apobj.add(url), f"apprise rejected {url}"
    return bool(apobj.notify(title=title, body=body))


def test_smtp_receives_mail_sent_through_apprise(smtp_server: SmtpServer) -> None:
    assert _notify(smtp_server.apprise_url(), title="Hit: ソフトバンク 300億ドル")
    [message] = smtp_server.wait_for(1)
    assert message["Subject"] == "Hit: ソフトバンク 300億ドル"
    assert message["To"] == "analyst@example.com"
    assert "watcher@example.com" in message["From"]
    body = message.get_body(preferencelist=("plain", "html"))
    assert body is not None and "$30 billion" in body.get_content()
    assert smtp_server.envelopes[0].rcpt_tos == ["analyst@example.com"]


def test_smtp_auth_accepts_good_and_refuses_bad_credentials() -> None:
    with SmtpServer(auth=("alertuser", "S3cret/PW")) as server:
        assert not _notify(server.apprise_url(credentials=("alertuser", "wrong")))
        assert _notify(server.apprise_url())
        server.wait_for(1)
        assert server.logins == ["alertuser"]
        assert server.envelopes[0].login == "alertuser"


def test_smtp_starttls(tls_cert: TlsCert) -> None:
    with SmtpServer(tls_cert=tls_cert, auth=("alertuser", "pw")) as server:
        assert server.apprise_url().startswith("mailtos://")
        assert _notify(server.apprise_url())
        server.wait_for(1)
        assert server.envelopes[0].tls


def test_smtp_stop_then_start_on_same_port(smtp_server: SmtpServer) -> None:
    port = smtp_server.port
    smtp_server.stop()
    smtp_server.stop()  # idempotent
    assert _refused(port)
    with pytest.raises(AssertionError, match="expected 1 messages"):
        smtp_server.wait_for(1, timeout=0.1)
    smtp_server.start()
    assert smtp_server.port == port
    assert _notify(smtp_server.apprise_url())
    assert len(smtp_server.wait_for(1)) == 1


# -- WebhookReceiver -------------------------------------------------------------------------------------------


def test_webhook_fail_next_then_success(webhook: WebhookReceiver) -> None:
    webhook.fail_next(1)
    with httpx.Client() as client:
        first = client.post(webhook.url_for("/hook"), json={"n": 1})
        second = client.post(webhook.url_for("/hook"), json={"n": 2})
    assert (first.status_code, second.status_code) == (500, 200)
    assert [r.body for r in webhook.wait_for(1)] == [{"n": 2}]
    assert len(webhook.requests) == 2


def test_webhook_receives_apprise_json(webhook: WebhookReceiver) -> None:
    assert _notify(webhook.apprise_url(), title="Hit", body="Azure & OpenAI")
    [(path, headers, payload)] = webhook.wait_for(1)
    assert path == "/hook"
    assert headers["content-type"].startswith("application/json")
    assert (payload["title"], payload["message"]) == ("Hit", "Azure & OpenAI")


def test_webhook_outage_and_hang(webhook: WebhookReceiver) -> None:
    port = webhook.port
    webhook.stop()
    assert _refused(port)
    webhook.start()
    assert webhook.port == port
    webhook.hang_next(1, seconds=5)
    with httpx.Client(timeout=0.3) as client:
        with pytest.raises(httpx.ReadTimeout):
            client.post(webhook.url_for("/hook"), json={})
        assert client.post(webhook.url_for("/hook"), json={"ok": True}).status_code == 200
    assert [r.body for r in webhook.received] == [{"ok": True}]
    started = time.monotonic()
    webhook.stop()  # the hung handler is still waiting: stop must not wait for it
    assert time.monotonic() - started < 2


# -- feed documents --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("build", [make_rss, make_atom])
def test_feed_builders_parse_with_feedparser(build: Callable[..., str]) -> None:
    document = build(ITEMS, title="Energy & AI")
    parsed = feedparser.parse(io.BytesIO(document.encode()))
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.feed.title == "Energy & AI"
    assert [e.id for e in parsed.entries] == ["a-1", "b-2"]
    assert [e.title for e in parsed.entries] == [i["title"] for i in ITEMS]
    assert [e.link for e in parsed.entries] == [i["link"] for i in ITEMS]
    assert parsed.entries[0].summary == "<p>$30 billion</p>"
    assert parsed.entries[0].published_parsed[:5] == (2025, 6, 10, 12, 0)
    assert parsed.entries[1].published_parsed[:5] == (2025, 6, 10, 12, 0)  # 21:00+09:00 is 12:00 UTC
