"""Alert messages and their delivery through apprise (or the console).

Delivery works from the outbox: :meth:`Deliverer.deliver_pending` reads pending alert rows, sends each to its
destination's URLs, and records which URLs accepted it. A URL that accepted an alert is never sent it again;
one that failed is retried with exponential backoff. The only window for a duplicate is a crash between a
URL accepting the alert and the store recording it (see README, "Delivery guarantees").

Feed text is untrusted: messages are sent as plain text (apprise escapes ``< > &`` for Slack and turns its
markdown off in that mode), control characters are removed, and titles lose their line breaks so they cannot
inject mail headers. Destination URLs carry tokens: they are never logged; errors name the destination and the
URL's scheme only.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TextIO
from urllib.parse import parse_qsl, unquote, urlsplit

import apprise

from .config import Destination, Secret
from .store import PendingAlert, Store, backoff

log = logging.getLogger("watcher.notify")

# apprise logs its raw configuration, passwords included, at DEBUG: never let it below INFO.
logging.getLogger("apprise").setLevel(logging.WARNING)

MAX_TITLE = 200
MAX_SUMMARY = 600
MAX_ATTEMPTS = 20  # then the alert is dead-lettered (about a week of capped backoff)

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def clean(text: str, limit: int, *, one_line: bool = False) -> str:
    """Untrusted text made safe to show: no control characters, optionally one line, cut at `limit`."""
    text = _CONTROL.sub(" ", text.replace("\r\n", "\n").replace("\r", "\n"))
    if one_line:
        text = " ".join(text.split())
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


@dataclass(frozen=True)
class Message:
    title: str  # one line
    body: str  # plain text


def render(a: PendingAlert) -> Message:
    """The plain-text alert for one hit."""
    when = (a.published or a.first_seen).astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    title = clean(a.title, MAX_TITLE, one_line=True) or "(untitled)"
    lines = [title]
    if a.link:
        lines.append(clean(a.link, 2000, one_line=True))
    lines.append(f"Feed: {clean(a.feed, 200, one_line=True)} | Published: {when}")
    lines.append(f"Rule: {a.rule} ({a.severity}) | Watch items: {', '.join(a.tags) or '-'}")
    if a.matched:
        lines.append("Matched: " + clean(", ".join(a.matched), 400, one_line=True))
    amounts = a.details.get("amounts") if isinstance(a.details, Mapping) else None
    if amounts:
        lines.append("Amounts: " + clean("; ".join(str(x) for x in amounts), 400, one_line=True))
    if a.summary:
        lines.append("")
        lines.append(clean(a.summary, MAX_SUMMARY))
    prefix = "[URGENT] " if a.severity == "urgent" else ""
    return Message(title=clean(f"{prefix}{a.rule}: {title}", MAX_TITLE, one_line=True), body="\n".join(lines))


def target_id(secret: Secret) -> str:
    """A secret-free, stable id for one URL: what the outbox records as 'delivered'."""
    return hashlib.sha256(secret.reveal().encode()).hexdigest()[:16]


def redact(text: str, secrets: Sequence[Secret]) -> str:
    """Remove from `text` every credential-like part of the given URLs."""
    for s in secrets:
        raw = s.reveal()
        parts = urlsplit(raw)
        pieces = {raw, parts.netloc, parts.path, parts.query, parts.password or "", parts.username or ""}
        pieces.update(seg for seg in parts.path.split("/") if len(seg) >= 4)
        pieces.update(v for _, v in parse_qsl(parts.query) if len(v) >= 4)
        for p in sorted((p for p in pieces if p and len(p) >= 4), key=len, reverse=True):
            text = text.replace(p, "***").replace(unquote(p), "***")
    return text


class Sender:
    """Sends one message to one URL; the seam tests and other channels plug into."""

    def __init__(self, timeout: float = 30.0) -> None:
        self.timeout = timeout

    async def send(self, secret: Secret, message: Message) -> tuple[bool, str]:
        # A fresh Apprise object per message: a reused one sleeps out its plugin's throttle (5.5 s between two
        # emails, measured), which would stall every alert behind it. Rate limits are watcher's own business.
        ap = apprise.Apprise()
        if not ap.add(secret.reveal()):
            return False, f"{secret.label}: apprise does not accept this URL (check its form)"
        try:
            result = await ap.async_notify(
                body=message.body, title=message.title, body_format=apprise.NotifyFormat.TEXT, timeout=self.timeout
            )
        except Exception as e:  # apprise plugins raise anything; an outage must not stop delivery
            return False, redact(f"{secret.label}: {type(e).__name__}: {e}", [secret])
        if result:
            return True, ""
        reason = result.status.name
        errors = [e.message for e in result.logs() if getattr(e, "level", 0) >= logging.WARNING]
        if errors:
            reason += ": " + str(errors[-1])[:300]
        return False, redact(f"{secret.label}: {reason}", [secret])


@dataclass(frozen=True)
class DeliveryReport:
    sent: int
    failed: int


class Deliverer:
    """Drains the outbox."""

    def __init__(
        self,
        store: Store,
        destinations: Mapping[str, Destination],
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        sender: Sender | None = None,
        console: TextIO | None = None,
        max_attempts: int = MAX_ATTEMPTS,
    ) -> None:
        self.store = store
        self.destinations = destinations
        self.now = now
        self.sender = sender or Sender()
        self.console = console
        self.max_attempts = max_attempts
        self._lock = asyncio.Lock()

    async def deliver_pending(self) -> DeliveryReport:
        """Send every due alert once. Serialised: two drains never send the same row."""
        async with self._lock:
            pending = await asyncio.to_thread(self.store.pending_alerts, self.now())
            sent = failed = 0
            for a in pending:
                ok = await self._deliver(a)
                sent += ok
                failed += not ok
            return DeliveryReport(sent, failed)

    async def _deliver(self, a: PendingAlert) -> bool:
        message = render(a)
        dest = self.destinations.get(a.destination)
        if dest is None:
            return await self._fail(a, f"destination '{a.destination}' is not configured any more", a.delivered)
        if dest.is_console:
            out = self.console or sys.stdout
            out.write(f"\n=== ALERT {message.title}\n{message.body}\n")
            out.flush()
            await asyncio.to_thread(self.store.mark_sent, a.id, self.now(), ())
            return True
        delivered = list(a.delivered)
        errors = []
        for secret in dest.urls:
            tid = target_id(secret)
            if tid in delivered:
                continue
            ok, reason = await self.sender.send(secret, message)
            if ok:
                delivered.append(tid)
                # record at once: a crash now must not resend to this URL
                await asyncio.to_thread(self.store.mark_partial, a.id, delivered)
            else:
                errors.append(reason)
        if not errors:
            await asyncio.to_thread(self.store.mark_sent, a.id, self.now(), delivered)
            log.info("alert %d sent to %s (rule %s)", a.id, a.destination, a.rule)
            return True
        return await self._fail(a, "; ".join(errors), delivered)

    async def _fail(self, a: PendingAlert, reason: str, delivered: Sequence[str]) -> bool:
        attempts = a.attempts + 1
        dead = attempts >= self.max_attempts
        when = self.now() + backoff(attempts)
        await asyncio.to_thread(self.store.mark_failed, a.id, reason, when, delivered, dead)
        log.warning(
            "alert %d to %s failed (attempt %d%s): %s",
            a.id,
            a.destination,
            attempts,
            ", dead-lettered" if dead else f", next try {when:%H:%M:%S}",
            reason,
        )
        return False
