"""feeds.yaml / rules.yaml loading: values, defaults, and errors that point at the line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from watcher.config import CONSOLE, load_feeds, load_rules
from watcher.durations import DurationError, format_duration, parse_duration, parse_size
from watcher.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("15m", 900), ("2h", 7200), ("7d", 604800), ("1h30m", 5400), (90, 90), ("45", 45), ("1.5h", 5400)],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["", "soon", "5 parsecs", "-3", True, "10x", None])
def test_bad_durations(bad: object) -> None:
    with pytest.raises(DurationError):
        parse_duration(bad)


def test_sizes_and_formatting() -> None:
    assert parse_size("10MB") == 10_000_000
    assert parse_size("512KiB") == 524_288
    assert parse_size(1000) == 1000
    assert format_duration(5400) == "1h30m"
    assert format_duration(86400) == "1d"


def test_feeds_defaults_and_overrides(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        "feeds.yaml",
        """\
defaults:
  interval: 30m
  timeout: 5s
feeds:
  - url: https://example.com/feed.xml
  - name: fast
    url: http://127.0.0.1:8000/a.xml
    interval: 2m
    tags: [x, y]
  - name: off
    url: file:///tmp/x.xml
    enabled: false
""",
    )
    cfg = load_feeds(p)
    first, fast, off = cfg.feeds
    assert first.name == "example.com-feed.xml" and first.interval == 1800 and first.timeout == 5
    assert fast.interval == 120 and fast.tags == ("x", "y")
    assert not off.enabled
    assert [f.name for f in cfg.enabled] == ["example.com-feed.xml", "fast"]


def test_feeds_errors_point_at_lines(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        "feeds.yaml",
        """\
defaults:
  intervall: 10m
feeds:
  - name: a
    url: ftp://example.com/x
  - name: b
    url: https://example.com/b
    interval: soon
  - name: b
    url: https://example.com/c
  - name: c
""",
    )
    with pytest.raises(ConfigError) as info:
        load_feeds(p)
    text = str(info.value)
    assert f"{p}:2: unknown key 'intervall' in defaults (did you mean 'interval'?)" in text
    assert f"{p}:5: url of feed 'a' must start with http://, https:// or file://" in text
    assert f"{p}:8: 'interval' in feed 'b'" in text
    assert f"{p}:9: feed name 'b' is used twice" in text
    assert f"{p}:11: feed 'c' has no 'url'" in text


def test_yaml_syntax_error_has_line(tmp_path: Path) -> None:
    p = write(tmp_path, "feeds.yaml", "feeds:\n  - url: https://a/b\n    name: [oops\n  - url: x\n")
    with pytest.raises(ConfigError) as info:
        load_feeds(p)
    (issue,) = info.value.issues
    assert issue.path == str(p) and issue.line is not None and 3 <= issue.line <= 4
    assert "YAML syntax error" in issue.message


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_feeds(tmp_path / "nope.yaml")


def test_rules_notify_env_substitution_and_secrecy(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        "rules.yaml",
        """\
notify:
  hook: ["json://127.0.0.1:9/hook?token=${HOOK_TOKEN}"]
rules:
  - name: r
    tags: [rival-deals]
    any: [nvidia]
""",
    )
    cfg = load_rules(p, {"HOOK_TOKEN": "s3cr3t-token"})
    dest = cfg.destinations["hook"]
    assert dest.urls[0].reveal() == "json://127.0.0.1:9/hook?token=s3cr3t-token"
    assert "s3cr3t" not in repr(cfg.destinations) and "s3cr3t" not in str(dest.urls[0])
    # the only configured destination becomes the default for rules that name none
    assert cfg.rules.rules[0].notify == ("hook",)


def test_rules_missing_env_is_an_error_naming_the_variable(tmp_path: Path) -> None:
    p = write(tmp_path, "rules.yaml", "notify:\n  slack: ['${SLACK_URL}']\nrules: []\n")
    with pytest.raises(ConfigError) as info:
        load_rules(p, {})
    assert f"{p}:2: environment variable SLACK_URL is not set" in str(info.value)


def test_no_notify_block_means_console(tmp_path: Path) -> None:
    p = write(tmp_path, "rules.yaml", "rules:\n  - name: r\n    any: [x]\n")
    cfg = load_rules(p, {})
    assert cfg.rules.rules[0].notify == (CONSOLE,)


def test_watcher_notify_env_is_the_default_destination(tmp_path: Path) -> None:
    p = write(tmp_path, "rules.yaml", "rules:\n  - name: r\n    any: [x]\n")
    cfg = load_rules(p, {"WATCHER_NOTIFY": "json://127.0.0.1:9/x"})
    assert cfg.rules.rules[0].notify == ("default",)


def test_rules_errors(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        "rules.yaml",
        """\
notify:
  slack: ["json://127.0.0.1:9/x"]
rules:
  - name: one
    tags: [compute-contracts]
    anyy: [foo]
  - name: two
    any: [bar]
    notify: [slak]
    severity: high
  - name: three
    regex: "gpu("
  - name: one
    any: [x]
  - tags: [x]
    any: [y]
""",
    )
    with pytest.raises(ConfigError) as info:
        load_rules(p, {})
    text = str(info.value)
    assert f"{p}:6: unknown key 'anyy' in rule 'one' (did you mean 'any'?)" in text
    assert f"{p}:9: rule 'two' notifies 'slak', which is not a destination (did you mean 'slack'?)" in text
    assert f"{p}:10: severity 'high' in rule 'two' is not known" in text
    assert f"{p}:12: bad regex in rule 'three'" in text
    assert f"{p}:13: rule name 'one' is used twice" in text
    assert f"{p}:15: rule 3 has no 'name'" in text or f"{p}:15: rule 5 has no 'name'" in text


def test_check_command_prints_file_line_for_typo_and_syntax_error(tmp_path: Path) -> None:
    feeds = write(tmp_path, "feeds.yaml", "feeds:\n  - url: https://example.com/feed\n")
    rules = write(
        tmp_path,
        "rules.yaml",
        """\
rules:
  - name: typo
    tagz: [azure-supply]
    any: [azure]
  - name: broken
    any: [a, b
""",
    )
    out = subprocess.run(
        [sys.executable, "-m", "watcher", "--feeds", str(feeds), "--rules", str(rules), "check"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1
    # the YAML syntax error is found first (the file cannot be read further)
    assert f"{rules}:" in out.stdout and "YAML syntax error" in out.stdout
    rules.write_text(rules.read_text().replace("any: [a, b\n", "any: [a, b]\n"))
    out = subprocess.run(
        [sys.executable, "-m", "watcher", "--feeds", str(feeds), "--rules", str(rules), "check"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1
    assert f"{rules}:3: unknown key 'tagz' in rule 'typo' (did you mean 'tags'?)" in out.stdout


def test_shipped_files_are_valid() -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "watcher",
            "--feeds",
            str(ROOT / "feeds.yaml"),
            "--rules",
            str(ROOT / "rules.yaml"),
            "check",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 0, out.stdout + out.stderr
    cfg = load_rules(ROOT / "rules.yaml", {})
    tags = {t for r in cfg.rules.rules for t in r.tags}
    assert {"compute-contracts", "azure-supply", "integration-roadmap", "rival-deals"} <= tags
