"""Alert and digest messages from Jinja2 templates, one per channel kind, escaped for that channel.

Feed text is untrusted. Before a template sees it, every field is cleaned (control characters removed, titles
made one line, long texts cut). Then each kind escapes what it prints:

* ``text`` (webhooks, console, every apprise service without a template of its own): plain text, sent as such.
* ``slack``: CommonMark that apprise turns into Slack mrkdwn. Every value printed by ``{{ ... }}`` is
  backslash-escaped (``\\ < > [ ]``), so ``<!channel>``, ``<@U123>``, ``<url|label>`` and ``[label](url)`` from a
  feed reach Slack as ``&lt;!channel&gt;``... (inert text), while the template's own link, built by the ``link``
  filter, stays a link. apprise's markdown mode alone would pass mentions through (LIBRARY-NOTES section 5).
* ``email``: HTML with autoescape on; apprise sends it as multipart/alternative (a text part derived from the
  HTML, and the HTML). The subject is made one line after rendering, so a title cannot inject mail headers.

Users override a kind by putting a file of the same name (``text.j2``, ``slack.j2``, ``email.j2``) in their
templates directory; the built-in one is used otherwise. Each file defines four blocks: ``title`` and ``body``
(one alert), ``digest_title`` and ``digest_body`` (several).
"""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import jinja2
from markupsafe import Markup, escape

from ..store import PendingAlert
from .destinations import KINDS, ChannelKind

log = logging.getLogger("watcher.notify")

BUILTIN_TEMPLATES = Path(__file__).parent / "templates"
MAX_TITLE = 200
MAX_SUMMARY = 600
MAX_LINK = 2000
DIGEST_MAX_ALERTS = 50  # alerts per digest message; more go out as several messages
BLOCKS = ("title", "body", "digest_title", "digest_body")

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_SLACK_SPECIAL = re.compile(r"([\\<>\[\]])")
_URL_UNSAFE = re.compile(r"[^A-Za-z0-9\-._~:/?#@!$&'*+,;=%]")


def clean(text: str, limit: int, *, one_line: bool = False) -> str:
    """Untrusted text made safe to show: no control characters, optionally one line, cut at `limit`."""
    text = _CONTROL.sub(" ", text.replace("\r\n", "\n").replace("\r", "\n"))
    if one_line:
        text = " ".join(text.split())
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def safe_link(url: str) -> str:
    """An http(s) URL with every character that could break out of a link percent-encoded; "" otherwise."""
    url = clean(url, MAX_LINK, one_line=True)
    try:
        parts = urlsplit(url)
    except ValueError:
        return ""
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return ""
    return _URL_UNSAFE.sub(lambda m: quote(m.group(0), safe=""), url)


@dataclass(frozen=True)
class Message:
    """What a channel gets: a one-line title and a body in `format` (text, markdown or html)."""

    title: str  # one line
    body: str
    format: str = "text"  # "text" | "markdown" | "html": how apprise should read the body


FORMATS: Mapping[ChannelKind, str] = {"text": "text", "slack": "markdown", "email": "html"}


@dataclass(frozen=True)
class AlertView:
    """One alert as templates see it: every feed-derived field already cleaned and cut."""

    id: int
    title: str
    link: str  # "" when the entry has no http(s) link
    feed: str
    published: str  # "2025-11-18 10:00 UTC"
    published_at: datetime
    rule: str
    severity: str
    urgent: bool
    tags: tuple[str, ...]
    matched: tuple[str, ...]
    amounts: tuple[str, ...]  # e.g. "USD 30,000,000,000 (up to)"
    summary: str
    destination: str


def _amount_text(x: Any) -> str:
    if isinstance(x, Mapping):
        for key in ("display", "formatted", "text"):
            if x.get(key):
                return str(x[key])
    return str(x)


def view(a: PendingAlert) -> AlertView:
    when = (a.published or a.first_seen).astimezone(UTC)
    amounts = a.details.get("amounts") if isinstance(a.details, Mapping) else None
    return AlertView(
        id=a.id,
        title=clean(a.title, MAX_TITLE, one_line=True) or "(untitled)",
        link=safe_link(a.link),
        feed=clean(a.feed, 200, one_line=True),
        published=when.strftime("%Y-%m-%d %H:%M UTC"),
        published_at=when,
        rule=clean(a.rule, 200, one_line=True),
        severity=a.severity,
        urgent=a.severity == "urgent",
        tags=tuple(clean(t, 100, one_line=True) for t in a.tags),
        matched=tuple(clean(m, 100, one_line=True) for m in a.matched if m),
        amounts=tuple(clean(_amount_text(x), 120, one_line=True) for x in (amounts or ()) if x),
        summary=clean(a.summary, MAX_SUMMARY),
        destination=a.destination,
    )


@dataclass(frozen=True)
class RuleGroup:
    rule: str
    alerts: tuple[AlertView, ...]  # newest first


@dataclass(frozen=True)
class WatchItemGroup:
    watch_item: str  # the alert's first tag, or "(no watch item)"
    rules: tuple[RuleGroup, ...]  # the rule with the newest alert first


@dataclass(frozen=True)
class DigestView:
    destination: str
    count: int
    urgent: int
    groups: tuple[WatchItemGroup, ...]  # the watch item with the newest alert first
    part: int = 1  # this message's number when a digest is split
    parts: int = 1


def group(alerts: Sequence[AlertView]) -> tuple[WatchItemGroup, ...]:
    """Digest order: by watch item, then rule, newest first at every level."""
    ordered = sorted(alerts, key=lambda a: (a.published_at, a.id), reverse=True)
    items: dict[str, dict[str, list[AlertView]]] = {}
    for a in ordered:
        items.setdefault(a.tags[0] if a.tags else "(no watch item)", {}).setdefault(a.rule, []).append(a)
    return tuple(
        WatchItemGroup(item, tuple(RuleGroup(rule, tuple(alerts)) for rule, alerts in rules.items()))
        for item, rules in items.items()
    )


# --- escaping per channel ------------------------------------------------------------------------------------


def slack_escape(value: Any) -> Any:
    """Backslash-escape what Slack (through apprise's CommonMark) would read as a link or a mention."""
    if isinstance(value, Markup) or value is None:
        return value if value is not None else ""
    return _SLACK_SPECIAL.sub(r"\\\1", str(value))


def _highlight_with(text: str, terms: Sequence[str], wrap: Callable[[str], str], esc: Callable[[str], str]) -> str:
    words = sorted({t for t in terms if t and len(t) <= 100}, key=len, reverse=True)
    if not words:
        return esc(text)
    pattern = re.compile("|".join(re.escape(w) for w in words), re.IGNORECASE)
    out: list[str] = []
    pos = 0
    for m in pattern.finditer(text):
        out.append(esc(text[pos : m.start()]))
        out.append(wrap(esc(m.group(0))))
        pos = m.end()
    out.append(esc(text[pos:]))
    return "".join(out)


def _plain(s: str) -> str:
    return s


def _slack_plain(s: str) -> str:
    return str(slack_escape(s))


def _html(s: str) -> str:
    return str(escape(s))


def highlight_text(text: str, terms: Sequence[str]) -> str:
    return _highlight_with(text, terms, lambda s: f"*{s}*", _plain)


def highlight_slack(text: str, terms: Sequence[str]) -> Markup:
    return Markup(_highlight_with(text, terms, lambda s: f"**{s}**", _slack_plain))


def highlight_html(text: str, terms: Sequence[str]) -> Markup:
    return Markup(_highlight_with(text, terms, lambda s: f"<mark>{s}</mark>", _html))


def link_text(url: str, label: str = "") -> str:
    return url


def link_slack(url: str, label: str = "Open the article") -> Markup:
    """Watcher's own link: a CommonMark link apprise turns into Slack's <url|label>; label escaped."""
    if not url:
        return Markup("")
    return Markup(f"[{slack_escape(clean(label, 100, one_line=True))}]({url})")


def link_html(url: str, label: str = "") -> Markup:
    if not url:
        return Markup("")
    return Markup(f'<a href="{escape(url)}">{escape(label or url)}</a>')


# --- environments ----------------------------------------------------------------------------------------------


class TemplateProblem(Exception):
    """A user template that does not load or render (its file and line, when known)."""

    def __init__(self, path: str, line: int | None, message: str) -> None:
        super().__init__(f"{path}:{line}: {message}" if line else f"{path}: {message}")
        self.path, self.line, self.message = path, line, message


def _environment(kind: ChannelKind, directories: Sequence[Path]) -> jinja2.Environment:
    loader = jinja2.FileSystemLoader([str(d) for d in directories])
    common: dict[str, Any] = {"trim_blocks": True, "lstrip_blocks": True, "undefined": jinja2.StrictUndefined}
    if kind == "email":
        env = jinja2.Environment(loader=loader, autoescape=True, **common)
        env.filters.update(highlight=highlight_html, link=link_html)
    elif kind == "slack":
        env = jinja2.Environment(loader=loader, autoescape=False, finalize=slack_escape, **common)
        env.filters.update(highlight=highlight_slack, link=link_slack, md=slack_escape)
    else:
        env = jinja2.Environment(loader=loader, autoescape=False, **common)
        env.filters.update(highlight=highlight_text, link=link_text)
    return env


def _one_line_title(kind: ChannelKind, raw: str) -> str:
    if kind == "email":
        raw = html.unescape(raw)  # autoescape was for the HTML body; a subject is plain text
    elif kind == "slack":
        raw = re.sub(r"\\([\\<>\[\]])", r"\1", raw)  # apprise escapes Slack titles itself
    return clean(raw, MAX_TITLE, one_line=True)


class Renderer:
    """Renders alerts and digests for each channel kind; a user directory overrides the built-in templates."""

    def __init__(self, templates_dir: str | Path | None = None) -> None:
        self.templates_dir = Path(templates_dir) if templates_dir else None
        dirs = [self.templates_dir, BUILTIN_TEMPLATES] if self.templates_dir else [BUILTIN_TEMPLATES]
        self._envs = {k: _environment(k, dirs) for k in KINDS}
        self._builtin = {k: _environment(k, [BUILTIN_TEMPLATES]) for k in KINDS}

    def check(self) -> list[TemplateProblem]:
        """Load every template of the user directory and render it on a sample: the problems found."""
        problems: list[TemplateProblem] = []
        if self.templates_dir is None:
            return problems
        sample = sample_alert()
        for kind in KINDS:
            path = self.templates_dir / f"{kind}.j2"
            if not path.exists():
                continue
            try:
                self.alert(sample, kind, strict=True)
                self.digest([sample], kind, "sample", strict=True)
            except TemplateProblem as e:
                problems.append(e)
        return problems

    def _render(self, kind: ChannelKind, block: str, ctx: Mapping[str, Any], strict: bool) -> str:
        name = f"{kind}.j2"
        try:
            return self._render_in(self._envs[kind], name, block, ctx)
        except jinja2.TemplateSyntaxError as e:
            problem = TemplateProblem(e.filename or name, e.lineno, f"template syntax error: {e.message}")
        except jinja2.TemplateError as e:
            problem = TemplateProblem(str(self._source(name)), _error_line(e), f"template error: {e}")
        except KeyError as e:
            problem = TemplateProblem(str(self._source(name)), None, f"the template has no block {e}")
        if strict:
            raise problem
        # a broken user template must not stop alerts: the built-in one takes over, and the log says why
        log.warning("%s; using the built-in %s template", problem, kind)
        return self._render_in(self._builtin[kind], name, block, ctx)

    @staticmethod
    def _render_in(env: jinja2.Environment, name: str, block: str, ctx: Mapping[str, Any]) -> str:
        template = env.get_template(name)
        return "".join(template.blocks[block](template.new_context(dict(ctx))))

    def _source(self, name: str) -> Path:
        if self.templates_dir is not None and (self.templates_dir / name).exists():
            return self.templates_dir / name
        return BUILTIN_TEMPLATES / name

    def alert(self, a: PendingAlert, kind: ChannelKind, *, strict: bool = False) -> Message:
        ctx = {"alert": view(a)}
        title = _one_line_title(kind, self._render(kind, "title", ctx, strict))
        body = self._render(kind, "body", ctx, strict).strip()
        return Message(title=title or "(untitled)", body=body, format=FORMATS[kind])

    def digest(
        self,
        alerts: Sequence[PendingAlert],
        kind: ChannelKind,
        destination: str,
        *,
        part: int = 1,
        parts: int = 1,
        strict: bool = False,
    ) -> Message:
        views = [view(a) for a in alerts]
        d = DigestView(
            destination=destination,
            count=len(views),
            urgent=sum(v.urgent for v in views),
            groups=group(views),
            part=part,
            parts=parts,
        )
        ctx = {"digest": d}
        title = _one_line_title(kind, self._render(kind, "digest_title", ctx, strict))
        body = self._render(kind, "digest_body", ctx, strict).strip()
        return Message(title=title or "watcher digest", body=body, format=FORMATS[kind])


def _error_line(e: jinja2.TemplateError) -> int | None:
    return getattr(e, "lineno", None)


_DEFAULT = Renderer()


def render(a: PendingAlert, kind: ChannelKind = "text") -> Message:
    """One alert as a message for `kind`, with the built-in templates."""
    return _DEFAULT.alert(a, kind)


def sample_alert(destination: str = "test") -> PendingAlert:
    """A made-up alert: what `watcher notify test` sends and what user templates are checked against."""
    now = datetime.now(UTC).replace(microsecond=0)
    return PendingAlert(
        id=0,
        destination=destination,
        attempts=0,
        delivered=(),
        rule="watcher-test",
        severity="info",
        tags=("compute-contracts",),
        matched=("compute", "billion"),
        details={"amounts": ["USD 30,000,000,000 (up to)"]},
        title="watcher test alert: Anthropic commits up to $30 billion to Azure compute",
        link="https://example.com/watcher-test",
        summary="This is a test alert sent by `watcher notify test`. If you can read it, this destination works.",
        feed="watcher",
        published=now,
        first_seen=now,
    )
