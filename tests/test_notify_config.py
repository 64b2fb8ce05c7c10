"""The notify: block and the rules' delivery keys: both YAML shapes, and errors with file:line and a fix."""

from __future__ import annotations

from datetime import time
from pathlib import Path

import pytest

from watcher.config import load_rules
from watcher.errors import ConfigError
from watcher.notify.policy import NO_QUIET_HOURS, DigestSchedule, QuietHours

ENV = {"SLACK_WEBHOOK_URL": "slack://T1/B1/C1", "SMTP_PASSWORD": "pw-123456"}


def load(tmp_path: Path, text: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    p = tmp_path / "rules.yaml"
    p.write_text(text, encoding="utf-8")
    return load_rules(p, ENV if env is None else env)


def errors(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as e:
        load(tmp_path, text)
    return str(e.value)


def test_list_and_mapping_forms(tmp_path: Path) -> None:
    cfg = load(
        tmp_path,
        """\
notify:
  slack: ["${SLACK_WEBHOOK_URL}"]
  email:
    urls: ["mailtos://me:${SMTP_PASSWORD}@smtp.example.com:587?to=a@example.com"]
    mode: digest
    digest: {daily_at: "08:00", timezone: Asia/Tokyo}
    quiet_hours: {from: "22:00", to: "07:00", timezone: Europe/Paris, urgent: hold}
    rate_limit: 10/h
    fallback: slack
    max_attempts: 5
    max_age: 2d
rules:
  - name: calm
    any: [x]
    notify: [email]
    mode: digest
    digest: {every: 30m}
  - name: loud
    any: [y]
    quiet_hours: none
""",
    )
    slack, email = cfg.destinations["slack"], cfg.destinations["email"]
    assert slack.policy.mode == "instant" and slack.policy.quiet_hours is None and slack.urls[0].kind == "slack"
    p = email.policy
    assert p.mode == "digest" and p.digest == DigestSchedule(every=None, daily_at=time(8), timezone="Asia/Tokyo")
    assert p.quiet_hours == QuietHours(time(22), time(7), "Europe/Paris", urgent_bypass=False)
    assert (p.rate_limit, p.fallback, p.max_attempts, p.max_age) == (10, "slack", 5, 2 * 86400)
    assert email.urls[0].kind == "email" and "pw-123456" not in repr(email)
    assert cfg.rule_policies["calm"].mode == "digest" and cfg.rule_policies["calm"].digest == DigestSchedule(every=1800)
    assert cfg.rule_policies["loud"].quiet_hours is NO_QUIET_HOURS
    # delivery keys do not change what a rule matches, so they do not change its version
    again = load(tmp_path, "rules:\n  - name: loud\n    any: [y]\n")
    assert again.rules.rules[0].version == cfg.rules.rules[1].version


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "notify:\n  email:\n    urls: [json://h/x]\n    mdoe: digest\n",
            "rules.yaml:4: unknown key 'mdoe' in destination 'email' (did you mean 'mode'?)",
        ),
        ("notify:\n  email:\n    mode: digest\n", "rules.yaml:2: destination 'email' has no 'urls'"),
        ("notify:\n  e:\n    urls: [json://h/x]\n    mode: daily\n", "rules.yaml:4: 'mode' in destination 'e' must be"),
        (
            "notify:\n  e:\n    urls: [json://h/x]\n    digest: {every: 1h, daily_at: '08:00'}\n",
            "rules.yaml:4: digest of destination 'e' needs exactly one of 'every' and 'daily_at'",
        ),
        (
            "notify:\n  e:\n    urls: [json://h/x]\n    digest: {daily_at: '25:00'}\n",
            "rules.yaml:4: 'daily_at' in digest of destination 'e' must be a time of day",
        ),
        (
            "notify:\n  e:\n    urls: [json://h/x]\n    digest:\n      daily_at: '08:00'\n      timezone: Asia/Tokio\n",
            "rules.yaml:6: unknown time zone 'Asia/Tokio' in digest of destination 'e' (did you mean 'Asia/Tokyo'?)",
        ),
        (
            "notify:\n  e:\n    urls: [json://h/x]\n    quiet_hours: {from: '22:00', till: '07:00'}\n",
            "rules.yaml:4: unknown key 'till' in quiet_hours of destination 'e' (allowed keys: from, timezone, to",
        ),
        (
            "notify:\n  e:\n    urls: [json://h/x]\n    quiet_hours: {from: '22:00', to: '22:00'}\n",
            "'from' and 'to' are the same time",
        ),
        (
            "notify:\n  e:\n    urls: [json://h/x]\n    rate_limit: lots\n",
            "rules.yaml:4: 'rate_limit' in destination 'e' must be a number of alerts per hour (write e.g. rate_",
        ),
        (
            "notify:\n  e:\n    urls: [json://h/x]\n    fallback: slak\n  slack: [json://h/y]\n",
            "rules.yaml:4: fallback 'slak' of destination 'e' is not a destination (did you mean 'slack'?)",
        ),
        ("notify:\n  e:\n    urls: [json://h/x]\n    fallback: e\n", "destination 'e' falls back to itself"),
        (
            "rules:\n  - name: r\n    any: [x]\n    quiet_hours: {from: '1:00', to: '2:00', urgnet: send}\n",
            "rules.yaml:4: unknown key 'urgnet' in quiet_hours of rule 'r' (did you mean 'urgent'?)",
        ),
        ("templates: nowhere\nrules: []\n", "rules.yaml:1: templates folder"),
    ],
)
def test_errors_point_at_the_line(tmp_path: Path, text: str, expected: str) -> None:
    assert expected in errors(tmp_path, text)


def test_a_template_error_points_at_the_template_line(tmp_path: Path) -> None:
    (tmp_path / "tpl").mkdir()
    (tmp_path / "tpl" / "email.j2").write_text("{% block title %}x{% endblock %}\n{% block body %}\n{% for %}\n")
    (tmp_path / "tpl" / "teams.j2").write_text("")
    text = errors(tmp_path, "templates: tpl\nrules: []\n")
    assert f"{tmp_path / 'tpl' / 'email.j2'}:3: template syntax error" in text
    assert "unknown template" in text and "teams.j2" in text


def test_templates_folder_is_relative_to_rules_yaml(tmp_path: Path) -> None:
    (tmp_path / "tpl").mkdir()
    (tmp_path / "tpl" / "text.j2").write_text(
        "{% block title %}T{% endblock %}{% block body %}B{% endblock %}"
        "{% block digest_title %}D{% endblock %}{% block digest_body %}DB{% endblock %}"
    )
    assert load(tmp_path, "templates: tpl\nrules: []\n").templates == str((tmp_path / "tpl").resolve())


def test_watcher_notify_is_the_default_destination(tmp_path: Path) -> None:
    cfg = load(tmp_path, "rules:\n  - name: r\n    any: [x]\n", {"WATCHER_NOTIFY": "json://127.0.0.1:9/hook"})
    assert cfg.rules.rules[0].notify == ("default",) and cfg.destinations["default"].urls[0].kind == "text"
