"""Destination URLs never show in clear: not in logs at any level (apprise's included, even forced to DEBUG and
TRACE), not in `watcher check`, not in error messages, not in `watcher alerts`."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alerting import Clock, add_alerts, deliverer
from servers import FeedServer, SmtpServer, TlsCert, WebhookReceiver, make_rss

from watcher.cli import main
from watcher.config import load_rules
from watcher.errors import ConfigError
from watcher.notify import Secret, redact
from watcher.notify.alertdb import AlertDB
from watcher.store import Store

SECRETS = ("S3cretPW-smtp", "TOKEN-abc123XYZ", "QTOK-98765", "SECRET-fail-path", "TIiajkdnlazkcOXrIdevi7")

RULES = """\
notify:
  mail: ["${MAIL_URL}"]
  hook:
    urls: ["${HOOK_URL}", "${FAIL_URL}"]
    max_attempts: 1
rules:
  - name: deal
    notify: [mail, hook]
    any: [billion]
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def secure_smtp(tls_cert: TlsCert) -> Iterator[SmtpServer]:
    with SmtpServer(auth=("alertuser", "S3cretPW-smtp"), tls_cert=tls_cert) as server:
        yield server


@pytest.fixture
def env(secure_smtp: SmtpServer, webhook: WebhookReceiver) -> dict[str, str]:
    return {
        "MAIL_URL": secure_smtp.apprise_url(),
        "HOOK_URL": webhook.apprise_url("/hook/TOKEN-abc123XYZ") + "?token=QTOK-98765",
        "FAIL_URL": f"json://127.0.0.1:{free_port()}/SECRET-fail-path",
    }


@pytest.fixture
def everything_logged(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Capture every record of every logger, apprise and urllib3 forced down to TRACE."""
    forced = [logging.getLogger(n) for n in ("apprise", "urllib3", "httpx", "watcher", "aiosmtpd")]
    before = [lg.level for lg in forced]
    for lg in forced:
        lg.setLevel(1)
    caplog.set_level(1)
    try:
        yield caplog
    finally:
        for lg, level in zip(forced, before, strict=True):
            lg.setLevel(level)


def assert_clean(text: str, what: str) -> None:
    for s in SECRETS:
        assert s not in text, f"{what} shows {s!r}"


def logged(caplog: pytest.LogCaptureFixture) -> str:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    return "\n".join(handler.format(r) for r in caplog.records)


def test_no_secret_in_a_debug_log_of_load_delivery_failure_and_notify_test(
    tmp_path: Path,
    env: dict[str, str],
    secure_smtp: SmtpServer,
    webhook: WebhookReceiver,
    everything_logged: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    config = load_rules(rules, env)
    store = Store.open(str(tmp_path / "w.db"))
    try:
        add_alerts(store, 2, ["mail", "hook"])
        d = deliverer(store, list(config.destinations.values())[1:], Clock())
        report = asyncio.run(d.deliver_pending())
        assert report.sent == 2 and report.failed == 1  # mail ok; hook: one URL refused (the 2nd alert waits)
        assert len(secure_smtp.messages) == 2 and len(webhook.received) == 2
        listing = str(AlertDB(store).listing())
    finally:
        store.close()
    assert "SECRET" not in listing and "hook[1] (json://)" in listing
    assert_clean(listing, "watcher alerts")

    # `watcher notify test` in this process, its logging set up as the CLI does it, then forced to TRACE again
    (tmp_path / "feeds.yaml").write_text("feeds: []\n")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    code = main(
        ["--feeds", str(tmp_path / "feeds.yaml"), "--rules", str(rules), "--log-level", "DEBUG", "notify", "test"]
    )
    out = capsys.readouterr()
    assert code == 1  # the refused URL
    assert "mail: mail[0] (mailtos://): sent" in out.out and "hook: hook[1] (json://): FAILED" in out.out
    assert_clean(out.out + out.err, "notify test output")

    text = logged(everything_logged)
    assert "apprise" in text and "urllib3" in text  # the noisy loggers really spoke at DEBUG
    assert "***" in text  # ...and were redacted
    assert_clean(text, "the DEBUG log")


def test_no_secret_in_check_poll_or_errors_from_the_command_line(
    tmp_path: Path, env: dict[str, str], feed_server: FeedServer, secure_smtp: SmtpServer
) -> None:
    url = feed_server.add(
        "/rss.xml", make_rss([{"guid": "1", "title": "A $1 billion deal", "published": datetime.now(UTC)}])
    )
    (tmp_path / "feeds.yaml").write_text(f"feeds:\n  - url: {url}\n")
    (tmp_path / "rules.yaml").write_text(RULES)
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHER_")} | env

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = [
            sys.executable,
            "-m",
            "watcher",
            "--feeds",
            str(tmp_path / "feeds.yaml"),
            "--rules",
            str(tmp_path / "rules.yaml"),
            "--db",
            str(tmp_path / "w.db"),
            "--log-level",
            "DEBUG",
            *args,
        ]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=full_env)

    for args in (("check",), ("poll",), ("alerts", "--json"), ("alerts", "--failed")):
        out = run(*args)
        assert_clean(out.stdout + out.stderr, f"watcher {' '.join(args)}")
    assert secure_smtp.wait_for(1)
    # a URL pasted without its scheme, and a missing variable: the errors name the place, never the value
    (tmp_path / "rules.yaml").write_text(
        "notify:\n  hook: ['TIiajkdnlazkcOXrIdevi7']\n  mail: ['${NOPE}']\nrules: []\n"
    )
    out = run("check")
    assert out.returncode == 1 and "rules.yaml:2: URL 1 of destination 'hook' has no scheme" in out.stdout
    assert "environment variable NOPE is not set" in out.stdout
    assert_clean(out.stdout + out.stderr, "check errors")


def test_secret_repr_and_redact() -> None:
    s = Secret("json://u:QTOK-98765@127.0.0.1:9/TOKEN-abc123XYZ?token=S3cretPW-smtp&to=me@example.com", "hook[0]")
    assert repr(s) == str(s) == "Secret(hook[0])" and f"{s}" == "Secret(hook[0])"
    text = redact(f"failed: {s.reveal()} user u:QTOK-98765 path /TOKEN-abc123XYZ q S3cretPW-smtp", [s])
    assert_clean(text, "redact()")
    assert "me@example.com" not in text or "to=" in text  # public query values may stay


def test_config_errors_never_echo_a_secret(tmp_path: Path) -> None:
    p = tmp_path / "rules.yaml"
    p.write_text("notify:\n  slack:\n    urls: ['TIiajkdnlazkcOXrIdevi7']\n    modee: digest\nrules: []\n")
    with pytest.raises(ConfigError) as e:
        load_rules(p, {})
    assert_clean(str(e.value), "config error")
    assert "rules.yaml:3: URL 1 of destination 'slack' has no scheme" in str(e.value)
    assert "rules.yaml:4: unknown key 'modee' in destination 'slack' (did you mean 'mode'?)" in str(e.value)
