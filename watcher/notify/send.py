"""One message to one apprise URL, with a bounded time and a secret-free reason when it fails."""

from __future__ import annotations

import logging

import apprise

from .destinations import Secret, redact
from .render import Message

# apprise logs its raw configuration, passwords included, at DEBUG: keep it quiet by default (the log record
# factory in destinations.py redacts what it would still print if someone turned it up).
logging.getLogger("apprise").setLevel(logging.WARNING)

_FORMATS = {
    "text": apprise.NotifyFormat.TEXT,
    "markdown": apprise.NotifyFormat.MARKDOWN,
    "html": apprise.NotifyFormat.HTML,
}
SEND_TIMEOUT = 30.0  # seconds one send may take, whatever the service; apprise reports TIMEOUT past it


class Sender:
    """Sends one message to one URL; the seam tests and other channels plug into."""

    def __init__(self, timeout: float = SEND_TIMEOUT) -> None:
        self.timeout = timeout

    async def send(self, secret: Secret, message: Message) -> tuple[bool, str]:
        """(True, "") when the service accepted the message; (False, reason) otherwise. Never raises."""
        # A fresh Apprise object per message: a reused one sleeps out its plugin's throttle (5.5 s between two
        # emails, measured), which would stall every alert behind it. Rate limits are watcher's own business.
        ap = apprise.Apprise()
        try:
            added = ap.add(secret.reveal())
        except Exception as e:  # a malformed URL can raise inside a plugin's parser
            return False, redact(f"{secret.label}: apprise cannot read this URL ({type(e).__name__})", [secret])
        if not added:
            return False, f"{secret.label}: apprise does not accept this URL (check its form)"
        try:
            result = await ap.async_notify(
                body=message.body or " ",
                title=message.title,
                body_format=_FORMATS.get(message.format, apprise.NotifyFormat.TEXT),
                timeout=self.timeout,
            )
        except Exception as e:  # apprise plugins raise anything; an outage must not stop delivery
            return False, redact(f"{secret.label}: {type(e).__name__}: {e}", [secret])
        if result:
            return True, ""
        reason = result.status.name
        errors = [e.message for e in result.logs() if _level(getattr(e, "level", 0)) >= logging.WARNING]
        if errors:
            reason += ": " + str(errors[-1])[:300]
        return False, redact(f"{secret.label}: {reason}", [secret])


def _level(level: object) -> int:
    """apprise 2.3 gives a level name ("WARNING"); older versions gave a number."""
    if isinstance(level, int):
        return level
    value = logging.getLevelName(str(level).upper())
    return value if isinstance(value, int) else 0
