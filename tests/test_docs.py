"""The README cannot rot: every command and option is documented, and its YAML examples load and pass."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from watcher.cli import build_parser
from watcher.config import load_feeds, load_rules
from watcher.rules import RuleSet

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def subcommands(parser: argparse.ArgumentParser | None = None, prefix: str = "") -> dict[str, argparse.ArgumentParser]:
    """Every command, nested ones included ("rules test"), with its parser."""
    parser = parser or build_parser()
    out: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out[prefix + name] = sub
                out.update(subcommands(sub, prefix + name + " "))
    return out


def nested(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The sub-commands of a command (`alerts retry`, `notify test`), if it has any."""
    for a in parser._actions:
        if isinstance(a, argparse._SubParsersAction):
            return dict(a.choices)
    return {}


def all_commands() -> dict[str, argparse.ArgumentParser]:
    out: dict[str, argparse.ArgumentParser] = {}
    for name, parser in subcommands().items():
        out[name] = parser
        out.update({f"{name} {sub}": p for sub, p in nested(parser).items()})
    return out


@pytest.mark.parametrize("name", sorted(all_commands()))
def test_every_command_and_option_is_documented(name: str) -> None:
    assert f"`watcher {name}" in README, f"README's command reference lacks `watcher {name}`"
    for action in all_commands()[name]._actions:
        for opt in action.option_strings:
            if opt not in ("-h", "--help"):
                assert opt in README, f"README does not mention {opt} of `watcher {name}`"


def test_global_options_are_documented() -> None:
    for action in build_parser()._actions:
        for opt in action.option_strings:
            if opt.startswith("--") and opt != "--help":
                assert opt in README, opt


def yaml_block_after(heading: str) -> str:
    section = README.split(heading, 1)[1]
    return re.search(r"```yaml\n(.*?)```", section, re.S).group(1)  # type: ignore[union-attr]


def test_readme_feeds_example_loads(tmp_path: Path) -> None:
    p = tmp_path / "feeds.yaml"
    p.write_text(yaml_block_after("### feeds.yaml"), encoding="utf-8")
    cfg = load_feeds(p)
    assert cfg.feeds[0].name == "openai-news" and cfg.defaults.per_host == 2


def test_readme_rules_example_loads_and_its_examples_pass(tmp_path: Path) -> None:
    p = tmp_path / "rules.yaml"
    p.write_text(yaml_block_after("### rules.yaml"), encoding="utf-8")
    env = {"SLACK_WEBHOOK_URL": "json://127.0.0.1:9/x", "SMTP_USER": "u", "SMTP_PASSWORD": "p"}
    cfg = load_rules(p, env)
    assert cfg.rules.rules
    for rule in cfg.rules.rules:
        assert rule.examples, rule.name
        for ex in rule.examples:
            assert bool(RuleSet([rule]).match_text(ex.text)) is ex.should_match, f"{rule.name}: {ex.text}"


def test_readme_quick_start_commands_are_the_ci_commands() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    test_cmd = re.findall(r"```sh\n(.*?)\n```", README, re.S)[1]
    assert test_cmd in ci, "the README's test command and .ci/run drifted apart"


def test_readme_destinations_example_loads(tmp_path: Path) -> None:
    p = tmp_path / "rules.yaml"
    p.write_text(yaml_block_after("### Destinations and delivery"), encoding="utf-8")
    env = {"SLACK_WEBHOOK_URL": "slack://T/B/C", "SMTP_USER": "u", "SMTP_PASSWORD": "p"}
    cfg = load_rules(p, env)
    email = cfg.destinations["email"].policy
    assert email.mode == "digest" and email.rate_limit == 10 and email.fallback == "slack"
    assert email.quiet_hours is not None and email.quiet_hours.timezone == "Europe/Paris"
    assert cfg.rule_policies["rival-roundup"].mode == "digest"


def test_readme_templates_example_loads(tmp_path: Path) -> None:
    (tmp_path / "templates").mkdir()
    p = tmp_path / "rules.yaml"
    p.write_text(yaml_block_after("### Templates") + "rules: []\n", encoding="utf-8")
    assert load_rules(p, {}).templates == str((tmp_path / "templates").resolve())
