"""Messages: what each channel receives, with feed text that tries to page the channel or inject mail headers.

Slack's public endpoint cannot run here: only the HTTP call inside apprise's Slack plugin is replaced, to
capture the exact payload Slack would get. Email goes to a real SMTP server; webhooks to a real receiver.
"""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import apprise.plugins.slack as apprise_slack
import pytest
from alerting import Clock, add_alerts, deliverer, dest
from servers import SmtpServer, WebhookReceiver

from watcher.notify import Renderer, Secret, Sender, render
from watcher.notify.render import MAX_SUMMARY, MAX_TITLE
from watcher.store import PendingAlert, Store

INJECTION = (
    "<!channel> <!here> <@U123> <!subteam^S1> <#C999> <https://evil.example/x|click here> "
    "[label](https://evil.example/y) \\<!everyone> a&b"
)
SLACK_URL = "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7"


def alert(**kw: Any) -> PendingAlert:
    base: dict[str, Any] = dict(
        id=1,
        destination="d",
        attempts=0,
        delivered=(),
        rule="big-compute",
        severity="notable",
        tags=("compute-contracts", "azure-supply"),
        matched=("compute", "billion"),
        details={"amounts": ["USD 30,000,000,000 (up to)", {"display": "1,000,000,000 W (1 GW)"}]},
        title="Anthropic commits $30 billion to Azure compute",
        link="https://news.example/1",
        summary="A compute deal worth up to $30 billion.",
        feed="wire",
        published=datetime(2025, 11, 18, 10, 0, tzinfo=UTC),
        first_seen=datetime(2025, 11, 18, 10, 5, tzinfo=UTC),
    )
    base.update(kw)
    return PendingAlert(**base)


def test_every_kind_shows_the_facts() -> None:
    for kind in ("text", "slack", "email"):
        m = render(alert(), kind)  # type: ignore[arg-type]
        assert m.title == "big-compute: Anthropic commits $30 billion to Azure compute"
        for fact in ("wire", "2025-11-18 10:00 UTC", "https://news.example/1", "notable", "compute-contracts"):
            assert fact in m.body, (kind, fact)
        assert "USD 30,000,000,000 (up to)" in m.body and "1,000,000,000 W (1 GW)" in m.body
    assert "*billion*" in render(alert()).body  # matched terms highlighted
    assert "<mark>billion</mark>" in render(alert(), "email").body
    assert render(alert(severity="urgent")).title.startswith("[URGENT] ")


def test_long_texts_are_cut_and_titles_are_one_line() -> None:
    m = render(alert(title="x\r\nBcc: victim@example.com\n" + "y" * 1000, summary="z" * 5000))
    assert "\n" not in m.title and len(m.title) <= MAX_TITLE
    assert max(len(line) for line in m.body.splitlines()) <= MAX_SUMMARY + 20


def capture_slack(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Replace only the HTTP call of apprise's Slack plugin: the payload is what Slack would receive."""
    sent: list[dict[str, Any]] = []

    class Response:
        status_code = 200
        content = b"ok"
        text = "ok"

    def request(method: str, url: str, **kw: Any) -> Response:
        assert url.startswith("https://hooks.slack.com/services/")
        sent.append(json.loads(kw["data"]))
        return Response()

    monkeypatch.setattr(apprise_slack.requests, "request", request)
    return sent


def slack_controls(text: str) -> list[str]:
    """Every Slack control sequence: <!...>, <@...>, <#...>, <url|label>, <url>."""
    return re.findall(r"<[^<>\s][^<>]*>", text)


def test_slack_payload_is_inert_and_watchers_link_works(monkeypatch: pytest.MonkeyPatch) -> None:
    sent = capture_slack(monkeypatch)
    hostile = alert(
        title=f"Deal {INJECTION}",
        summary=f"Body {INJECTION}",
        feed=f"feed {INJECTION}",
        link="https://news.example/1?a=1&b=2|<!channel>",
    )
    r = Renderer()
    secret = Secret(SLACK_URL, "slack[0] (slack://)")
    for message in (r.alert(hostile, "slack"), r.digest([hostile, alert(id=2)], "slack", "slack")):
        ok, reason = asyncio.run(Sender(timeout=5).send(secret, message))
        assert ok, reason
    assert len(sent) == 2
    for payload in sent:
        assert "link_names" not in payload
        (att,) = payload["attachments"]
        for field in (att["title"], att["text"]):
            for control in slack_controls(field):
                # the only control sequences left are watcher's own links, to the entry's own URL
                assert control.startswith("<https://news.example/1"), control
            if "digest" not in att["title"]:
                assert "&lt;!channel&gt;" in field and "&lt;@U123&gt;" in field
            assert "<https://evil" not in field and "<!" not in field and "<@" not in field and "<#" not in field
    single = sent[0]["attachments"][0]["text"]
    assert "<https://news.example/1?a=1&amp;b=2%7C%3C!channel%3E|Open the article>" in single
    digest_text = sent[1]["attachments"][0]["text"]
    assert digest_text.count("|link>") == 2 and "&lt;!channel&gt;" in digest_text


def test_email_is_multipart_with_a_proper_subject_and_escaped_html(tmp_path: Path, smtp_server: SmtpServer) -> None:
    store = Store.open(str(tmp_path / "w.db"))
    try:
        add_alerts(
            store,
            1,
            ["mail"],
            title="Deal <b>bold</b> & co\r\nBcc: victim@example.com\nX-Injected: yes",
            summary='<script>alert("x")</script> <!channel>',
            link='https://news.example/1?"onmouseover="x',
        )
        d = deliverer(store, [dest("mail", smtp_server.apprise_url())], Clock())
        assert asyncio.run(d.deliver_pending()).sent == 1
    finally:
        store.close()
    (m,) = smtp_server.wait_for(1)
    (env,) = smtp_server.envelopes
    assert env.rcpt_tos == ["analyst@example.com"]
    assert "X-Injected" not in m and "Bcc" not in m
    assert str(m["subject"]) == "big-compute: Deal <b>bold</b> & co Bcc: victim@example.com X-Injected: yes"
    assert m.get_content_type() == "multipart/alternative"
    plain = m.get_body(("plain",)).get_content()
    html_part = m.get_body(("html",)).get_content()
    assert "Deal <b>bold</b> & co" in plain and "https://news.example/1" in plain
    assert "&lt;b&gt;bold&lt;/b&gt; &amp; co" in html_part and "<b>bold</b>" not in html_part
    assert "<script>" not in html_part and "&lt;script&gt;" in html_part
    assert 'href="https://news.example/1?%22onmouseover=%22x"' in html_part


def test_webhook_gets_plain_text(tmp_path: Path, webhook: WebhookReceiver) -> None:
    store = Store.open(str(tmp_path / "w.db"))
    try:
        add_alerts(store, 1, ["hook"], title="Deal {i} <!channel>\u202e\x07")
        asyncio.run(deliverer(store, [dest("hook", webhook.apprise_url())], Clock()).deliver_pending())
    finally:
        store.close()
    (r,) = webhook.wait_for(1)
    assert r.body["type"] == "info" and "<!channel>" in r.body["title"]  # plain text: nothing to interpret
    assert "\u202e" not in r.body["title"] and "\x07" not in r.body["message"]


def test_user_templates_override_one_kind(tmp_path: Path) -> None:
    (tmp_path / "text.j2").write_text(
        "{% block title %}NEWS {{ alert.title }}{% endblock %}"
        "{% block body %}{{ alert.feed }} / {{ alert.tags | join('+') }}{% endblock %}"
        "{% block digest_title %}{{ digest.count }} items{% endblock %}"
        "{% block digest_body %}{% for g in digest.groups %}{{ g.watch_item }};{% endfor %}{% endblock %}"
    )
    r = Renderer(tmp_path)
    assert r.check() == []
    m = r.alert(alert(), "text")
    assert (m.title, m.body) == (
        "NEWS Anthropic commits $30 billion to Azure compute",
        "wire / compute-contracts+azure-supply",
    )
    older = alert(id=2, tags=("rival-deals",), published=datetime(2025, 11, 17, tzinfo=UTC))
    assert r.digest([older, alert()], "text", "d").body == "compute-contracts;rival-deals;"  # newest group first
    assert "Feed: wire" in r.alert(alert(), "slack").body  # the other kinds keep the built-in templates


def test_a_broken_user_template_is_reported_with_its_line_and_never_stops_alerts(tmp_path: Path) -> None:
    (tmp_path / "slack.j2").write_text(
        "{% block title %}x{% endblock %}\n{% block body %}{{ alert.nope }}{% endblock %}"
    )
    (tmp_path / "email.j2").write_text("{% block title %}\n\n{% if %}{% endblock %}")
    r = Renderer(tmp_path)
    problems = {Path(p.path).name: p for p in r.check()}
    assert problems["email.j2"].line == 3 and "syntax" in problems["email.j2"].message
    assert "nope" in problems["slack.j2"].message
    assert "Feed: wire" in r.alert(alert(), "slack").body  # fell back to the built-in template
