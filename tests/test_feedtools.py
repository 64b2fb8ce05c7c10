"""``watcher feeds discover``, ``watcher feeds import``, ``watcher feeds export``, through the real command line
(in-process ``main``), against real files and a real local HTTP server."""

from __future__ import annotations

import difflib
import json
import shutil
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
from servers import FeedServer, make_atom, make_rss

from watcher.cli import build_parser, main
from watcher.config import load_feeds

ROOT = Path(__file__).resolve().parent.parent

OPML = """<?xml version="1.0" encoding="UTF-8"?>
<opml version="1.0">
  <head><title>Exported from a reader</title></head>
  <body>
    <outline text="AI labs" title="AI labs">
      <outline type="rss" text="OpenAI &amp; friends" xmlUrl="https://openai.com/news/rss.xml"/>
      <outline type="rss" text="Mistral news" xmlUrl="https://mistral.ai/news/rss.xml"/>
      <outline type="rss" text="Nvidia blog" xmlUrl="https://blogs.nvidia.com/feed"/>
    </outline>
    <outline type="rss" text="日経クロステック" xmlUrl="https://xtech.nikkei.com/rss/index.rdf" category="/ja,/press"/>
    <outline type="rss" text="An FTP feed" xmlUrl="ftp://files.example/feed.xml"/>
    <outline type="rss" text="Mistral again" xmlUrl="https://Mistral.AI/news/rss.xml#top"/>
    <outline type="rss" text="Old stuff" xmlUrl="https://old.example/feed" isComment="true"/>
  </body>
</opml>
"""


def cli(tmp_path: Path, *args: str) -> list[str]:
    return [
        "--feeds",
        str(tmp_path / "feeds.yaml"),
        "--rules",
        str(ROOT / "rules.yaml"),
        "--db",
        str(tmp_path / "w.db"),
        *args,
    ]


def test_import_appends_new_feeds_and_keeps_every_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copy(ROOT / "feeds.yaml", tmp_path / "feeds.yaml")
    before = (tmp_path / "feeds.yaml").read_text(encoding="utf-8")
    (tmp_path / "subs.opml").write_text(OPML, encoding="utf-8")

    assert main(cli(tmp_path, "feeds", "import", str(tmp_path / "subs.opml"))) == 0
    out, err = capsys.readouterr()
    after = (tmp_path / "feeds.yaml").read_text(encoding="utf-8")

    # Comments and layout intact: the only change is lines inserted, at the end of the feeds list.
    old, new = before.splitlines(), after.splitlines()
    ops = difflib.SequenceMatcher(None, old, new, autojunk=False).get_opcodes()
    assert [op for op, *_ in ops if op != "equal"] == ["insert"], ops
    _, i1, _, j1, j2 = next(o for o in ops if o[0] == "insert")
    assert old[i1 - 1].strip() == "tags: [ja, aggregator]" and i1 == len(old)  # after the last feed
    assert new[j1:j2] == [
        "  - name: mistral-news",
        "    url: https://mistral.ai/news/rss.xml",
        "    tags: [AI labs]",
        "  - name: 日経クロステック",
        "    url: https://xtech.nikkei.com/rss/index.rdf",
        "    tags: [ja, press]",
        "  - name: old-stuff",
        "    url: https://old.example/feed",
        "    enabled: false",
    ]
    assert sum(line.lstrip().startswith("#") for line in new) == sum(line.lstrip().startswith("#") for line in old)

    # Duplicates and unusable URLs are skipped and said so, with the OPML line.
    assert "skipped  https://openai.com/news/rss.xml (" in out and "already in feeds.yaml as 'openai-news'" in out
    assert "already in feeds.yaml as 'nvidia-blog'" in out  # same URL but for the trailing slash
    assert "ftp://files.example/feed.xml" in out and "not an http(s) URL" in out
    assert "listed twice; added once, as 'mistral-news'" in out
    assert "3 feeds added" in err and "4 skipped" in err

    config = load_feeds(tmp_path / "feeds.yaml")  # what `watcher check` loads
    assert next(f for f in config.feeds if f.name == "old-stuff").enabled is False

    # Importing again adds nothing and leaves the file as it is.
    assert main(cli(tmp_path, "feeds", "import", str(tmp_path / "subs.opml"))) == 0
    assert (tmp_path / "feeds.yaml").read_text(encoding="utf-8") == after
    assert "0 feeds added" in capsys.readouterr().err


def test_import_creates_a_missing_feeds_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "subs.opml").write_text(OPML, encoding="utf-8")
    assert main(cli(tmp_path, "feeds", "import", str(tmp_path / "subs.opml"))) == 0
    names = [f.name for f in load_feeds(tmp_path / "feeds.yaml").feeds]
    assert names == ["openai-friends", "mistral-news", "nvidia-blog", "日経クロステック", "old-stuff"]


@pytest.mark.parametrize(
    ("opml", "message"),
    [
        (
            '<?xml version="1.0"?>\n<!DOCTYPE opml [<!ENTITY a "aaaaaaaaaa">]>\n<opml><body/></opml>',
            "subs.opml:2: OPML with a DOCTYPE is refused",
        ),
        ('<?xml version="1.0"?>\n<opml><body>\n<outline xmlUrl="x"></opml>', "subs.opml:3: not well-formed XML"),
        ("<rss><channel/></rss>", "subs.opml:1: not an OPML file (the root element is <rss>"),
        ('<opml version="2.0"><head/></opml>', "subs.opml: OPML without a <body>"),
    ],
)
def test_import_refuses_bad_opml_with_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], opml: str, message: str
) -> None:
    (tmp_path / "feeds.yaml").write_text("feeds:\n  - url: https://a.example/feed\n", encoding="utf-8")
    (tmp_path / "subs.opml").write_text(opml, encoding="utf-8")
    assert main(cli(tmp_path, "feeds", "import", str(tmp_path / "subs.opml"))) == 2
    assert message in capsys.readouterr().err
    assert (tmp_path / "feeds.yaml").read_text() == "feeds:\n  - url: https://a.example/feed\n"


def test_import_refuses_to_edit_an_invalid_feeds_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = "feeds:\n  - url: https://a.example/feed\n    intervall: 5m\n"
    (tmp_path / "feeds.yaml").write_text(broken, encoding="utf-8")
    (tmp_path / "subs.opml").write_text(OPML, encoding="utf-8")
    assert main(cli(tmp_path, "feeds", "import", str(tmp_path / "subs.opml"))) == 2
    err = capsys.readouterr().err
    assert "feeds.yaml:3: unknown key 'intervall'" in err and "was not changed" in err
    assert (tmp_path / "feeds.yaml").read_text() == broken


def test_export_is_valid_opml_and_imports_back(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "feeds.yaml").write_text(
        "feeds:\n"
        '  - name: "R&D <news> \\"quoted\\""\n'
        "    url: https://a.example/feed?x=1&y=2\n"
        "    tags: [labs, ja]\n"
        "  - name: off\n"
        "    url: https://b.example/rss\n"
        "    enabled: false\n",
        encoding="utf-8",
    )
    assert main(cli(tmp_path, "feeds", "export")) == 0
    text = capsys.readouterr().out
    root = ET.fromstring(text.encode())  # well-formed
    assert root.tag == "opml" and root.get("version") == "2.0"
    first, second = root.iter("outline")
    assert first.get("text") == 'R&D <news> "quoted"' and first.get("xmlUrl") == "https://a.example/feed?x=1&y=2"
    assert first.get("category") == "/labs,/ja" and second.get("isComment") == "true"
    assert "R&amp;D &lt;news&gt; &quot;quoted&quot;" in text

    out = tmp_path / "out.opml"
    assert main(cli(tmp_path, "feeds", "export", "-o", str(out))) == 0
    assert out.read_text(encoding="utf-8").replace(root.findtext("head/dateCreated") or "", "") == text.replace(
        root.findtext("head/dateCreated") or "", ""
    )
    other = tmp_path / "other"
    other.mkdir()
    assert main(cli(other, "feeds", "import", str(out))) == 0
    back = load_feeds(other / "feeds.yaml").feeds
    assert [(f.url, f.tags, f.enabled) for f in back] == [
        ("https://a.example/feed?x=1&y=2", ("labs", "ja"), True),
        ("https://b.example/rss", (), False),
    ]


PAGE = """<!DOCTYPE html><html><head><title>Blog</title>
<link rel="alternate" type="application/rss+xml" title="Posts" href="/blog/feed.xml">
<link rel="alternate" type="application/atom+xml" title="Comments" href="comments.atom">
<link rel="alternate" type="application/feed+json" href="https://json.example/feed.json">
</head><body>hello</body></html>"""


def discover(tmp_path: Path, capsys: pytest.CaptureFixture[str], url: str) -> tuple[int, list[dict[str, str]], str]:
    code = main(cli(tmp_path, "feeds", "discover", url, "--json"))
    out, err = capsys.readouterr()
    return code, json.loads(out) if out.strip() else [], err


def test_discover_lists_advertised_feeds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], feed_server: FeedServer
) -> None:
    page = feed_server.add("/blog/", PAGE, content_type="text/html; charset=utf-8")
    moved = feed_server.add("/old-blog", b"", redirect_to="/blog/", redirect_status=301)
    code, found, _ = discover(tmp_path, capsys, moved)
    assert code == 0
    base = feed_server.url
    assert [(f["url"], f["kind"], f["title"], f["found"]) for f in found] == [
        (f"{base}/blog/feed.xml", "rss", "Posts", "advertised"),
        (f"{base}/blog/comments.atom", "atom", "Comments", "advertised"),  # relative to the final URL
        ("https://json.example/feed.json", "json", "", "advertised"),
    ]
    assert main(cli(tmp_path, "feeds", "discover", page)) == 0
    table = capsys.readouterr().out
    assert f"{base}/blog/feed.xml" in table and "advertised" in table


def test_discover_a_feed_and_the_usual_paths(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], feed_server: FeedServer
) -> None:
    feed_url = feed_server.add("/feed.xml", make_rss([{"guid": "1", "title": "x"}], title="Site news"))
    code, found, err = discover(tmp_path, capsys, feed_url)
    assert code == 0 and found == [{"url": feed_url, "kind": "rss", "title": "Site news", "found": "itself"}]
    assert "is itself a feed" in err

    # A page advertising nothing: only the usual paths that really serve a feed are listed.
    page = feed_server.add(
        "/", "<html><head><title>Home</title></head><body>hi</body></html>", content_type="text/html"
    )
    feed_server.add("/rss", "<html><body>not a feed</body></html>", content_type="text/html")  # a soft 404
    feed_server.add("/atom.xml", make_atom([{"id": "a", "title": "y"}], title="Atom"))
    code, found, _ = discover(tmp_path, capsys, page)
    assert code == 0
    assert [(f["url"], f["kind"], f["found"]) for f in found] == [
        (f"{feed_server.url}/feed.xml", "rss", "common-path"),
        (f"{feed_server.url}/atom.xml", "atom", "common-path"),
    ]


def test_discover_reports_nothing_found_and_failures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], feed_server: FeedServer
) -> None:
    page = feed_server.add("/p", "<html><body>nothing</body></html>", content_type="text/html")
    code, found, err = discover(tmp_path, capsys, page)
    assert code == 1 and found == [] and "advertises no feed; tried 7 usual paths" in err
    code, _, err = discover(tmp_path, capsys, feed_server.url_for("/missing"))
    assert code == 1 and "cannot fetch" in err and "404" in err
    assert main(cli(tmp_path, "feeds", "discover", "file:///etc/passwd")) == 2


def test_feeds_without_an_action_still_prints_the_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "feeds.yaml").write_text("feeds:\n  - url: https://a.example/feed\n", encoding="utf-8")
    assert main(cli(tmp_path, "feeds", "--json")) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["url"] == "https://a.example/feed" and row["status"] == "never polled"
    assert main(cli(tmp_path, "feeds")) == 0
    out = capsys.readouterr().out
    assert "a.example-feed" in out and "state" in out and "never polled" in out


def test_feeds_actions_are_documented() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    feeds = build_parser()._subparsers._group_actions[0].choices["feeds"]  # type: ignore[union-attr]
    actions = feeds._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert set(actions) == {"discover", "import", "export"}
    for name, parser in actions.items():
        assert f"`watcher feeds {name}" in readme, name
        for action in parser._actions:
            for opt in action.option_strings:
                if opt not in ("-h", "--help"):
                    assert opt in readme, (name, opt)


def test_import_through_a_symlink_and_export_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    real = tmp_path / "config" / "feeds.yaml"
    real.parent.mkdir()
    real.write_text("feeds:\n  - url: https://a.example/feed\n", encoding="utf-8")
    (tmp_path / "feeds.yaml").symlink_to(real)
    (tmp_path / "subs.opml").write_text(OPML, encoding="utf-8")
    assert main(cli(tmp_path, "feeds", "import", str(tmp_path / "subs.opml"))) == 0
    assert (tmp_path / "feeds.yaml").is_symlink() and "mistral-news" in real.read_text(encoding="utf-8")
    capsys.readouterr()
    assert main(cli(tmp_path, "feeds", "export", "-o", str(tmp_path / "missing" / "out.opml"))) == 2
    assert "cannot write" in capsys.readouterr().err
