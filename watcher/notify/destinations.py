"""Destinations and the secrets they hold: apprise URLs that must never be seen in clear.

A destination URL carries tokens and passwords (``slack://T/B/token``, ``mailtos://user:password@host``). Three
guards keep them out of sight:

* :class:`Secret` wraps a URL; its ``repr``/``str`` show a label such as ``slack[0] (slack://)`` only.
* :func:`redact` cuts every credential-like part of given URLs out of a text (error messages, apprise's logs).
* every Secret registers its pieces with a process-wide :class:`_Redactor`, plugged into ``logging``'s record
  factory: a log record from ANY logger (apprise at DEBUG, urllib3, ours) is scrubbed when it is created, before
  a handler can see it. apprise logs raw URLs, passwords included, at DEBUG and TRACE (measured: "password=...",
  "Loaded JSON URL: json://host/token", urllib3's "POST /token"); setting a logger level is not enough, because a
  user or a test may turn any logger up.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qsl, unquote, urlsplit

from .policy import DeliveryPolicy

ChannelKind = Literal["text", "slack", "email"]
KINDS: tuple[ChannelKind, ...] = ("text", "slack", "email")

# query parameters of apprise URLs that hold no secret (kept readable in logs); every other value is redacted
_PUBLIC_QUERY_KEYS = frozenset(
    {"mode", "format", "overflow", "method", "verify", "from", "to", "cc", "bcc", "name", "smtp", "port", "rto", "cto"}
)
_MIN_PIECE = 6  # shorter path segments and query values are left alone (they are words, not tokens)


def secret_pieces(raw: str) -> set[str]:
    """The parts of an apprise URL that may be credentials, each also in its %-decoded form."""
    pieces = {raw}
    try:
        parts = urlsplit(raw)
        password = parts.password
    except ValueError:  # an odd port or bracket: redact the whole thing and every long run in it
        return pieces | {p for p in re.split(r"[/:?&=@#]", raw) if len(p) >= _MIN_PIECE}
    if password and len(password) >= 4:
        # shorter "passwords" are placeholders, and redacting every "p" or "pw" would garble every log line
        pieces.add(password)
        pieces.add(parts.netloc.rsplit("@", 1)[0])  # user:password
    pieces.update(seg for seg in parts.path.split("/") if len(seg) >= _MIN_PIECE)
    if parts.netloc and "@" not in parts.netloc and not re.fullmatch(r"[\w.-]+(:\d+)?", parts.netloc):
        pieces.add(parts.netloc)
    if parts.scheme.lower() not in ("http", "https", "mailto", "mailtos", "json", "form", "xml"):
        # slack://T/B/C, tgram://bottoken/chat, ntfy://topic...: the "host" is a token too
        host = parts.netloc.rsplit("@", 1)[-1]
        if len(host) >= _MIN_PIECE:
            pieces.add(host)
    pieces.update(v for k, v in parse_qsl(parts.query) if k.lower() not in _PUBLIC_QUERY_KEYS and len(v) >= 4)
    return pieces | {unquote(p) for p in pieces}


def redact(text: str, secrets: Iterable[Secret]) -> str:
    """`text` with every credential-like part of the given URLs replaced by ``***``."""
    pieces: set[str] = set()
    for s in secrets:
        pieces |= secret_pieces(s.reveal())
    for p in sorted((p for p in pieces if p), key=len, reverse=True):
        text = text.replace(p, "***")
    return text


class _Redactor:
    """Every secret seen by this process, as one regex; applied to each log record at its creation."""

    def __init__(self) -> None:
        self._pieces: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self._lock = threading.Lock()

    def add(self, raw: str) -> None:
        new = {p for p in secret_pieces(raw) if p} - self._pieces
        if not new:
            return
        with self._lock:
            self._pieces |= new
            alternatives = sorted(self._pieces, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(p) for p in alternatives))

    def __call__(self, text: str) -> str:
        pattern = self._pattern
        return text if pattern is None else pattern.sub("***", text)

    @property
    def active(self) -> bool:
        return self._pattern is not None

    def scrub(self, record: logging.LogRecord) -> None:
        """Format the record's message now, redacted; pre-format its traceback the same way."""
        try:
            message = record.getMessage()
        except Exception:  # a bad format string is the logger's bug; show it raw, redacted
            message = f"{record.msg!r} % {record.args!r}"
        clean = self(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = self(logging.Formatter().formatException(record.exc_info))
        if record.stack_info:
            record.stack_info = self(record.stack_info)


REDACTOR = _Redactor()


def _install_record_factory() -> None:
    previous = logging.getLogRecordFactory()
    if getattr(previous, "_watcher_redacts", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        if REDACTOR.active:
            REDACTOR.scrub(record)
        return record

    factory._watcher_redacts = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


_install_record_factory()


class Secret:
    """A destination URL: it holds tokens, so it never prints in clear (repr, str, logs, errors)."""

    __slots__ = ("_value", "label")

    def __init__(self, value: str, label: str) -> None:
        self._value = value
        self.label = label  # e.g. "slack[0] (slack://)" : what a log line may show
        REDACTOR.add(value)

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({self.label})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    @property
    def kind(self) -> ChannelKind:
        return channel_kind(self._value)


def scheme_label(name: str, i: int, url: str) -> str:
    """What logs and errors may show of URL number `i` of a destination: its name, index and scheme."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else "?"
    if not re.fullmatch(r"[a-z][a-z0-9+.-]{0,20}", scheme):
        scheme = "?"
    return f"{name}[{i}] ({scheme}://)"


def channel_kind(url: str) -> ChannelKind:
    """Which message template a URL gets: Slack (mrkdwn), email (HTML + text) or plain text for the rest."""
    scheme, _, rest = url.partition("://")
    scheme = scheme.lower()
    host = rest.split("/", 1)[0].rsplit("@", 1)[-1].lower()
    if scheme == "slack" or (scheme in ("http", "https") and host in ("hooks.slack.com", "hooks.slack-gov.com")):
        return "slack"
    if scheme in ("mailto", "mailtos"):
        return "email"
    return "text"


def target_id(secret: Secret) -> str:
    """A secret-free, stable id for one URL: what the outbox records as 'delivered'."""
    return hashlib.sha256(secret.reveal().encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Destination:
    """A named list of apprise URLs (or the console), with its delivery policy."""

    name: str
    urls: tuple[Secret, ...] = ()  # empty for the console
    policy: DeliveryPolicy = field(default_factory=DeliveryPolicy)  # mode, digest, quiet hours, limits, fallback
    line: int | None = None  # where rules.yaml defines it

    @property
    def is_console(self) -> bool:
        return not self.urls

    def labels(self) -> Sequence[str]:
        return [s.label for s in self.urls]
