"""Alerts: from the outbox to Slack, email, webhooks or the console, on time and never twice.

destinations.py  Secret (a URL never shown in clear), Destination, log redaction
policy.py        what to send when: instant / digest, quiet hours, rate limit, retries (pure)
render.py        Jinja2 templates per channel kind, escaping feed text for each channel
send.py          one message to one apprise URL (Sender)
alertdb.py       the outbox's queries
outbox.py        the deliverer (Deliverer): drains the outbox, one worker per destination
lock.py          one deliverer per database across processes
settings.py      the `notify:` block of rules.yaml and the rules' delivery keys
probe.py         `watcher notify test`
"""

from .destinations import Destination, Secret, channel_kind, redact, target_id
from .outbox import MAX_ATTEMPTS, Deliverer, DeliveryReport
from .render import Message, Renderer, clean, render
from .send import Sender

__all__ = [
    "MAX_ATTEMPTS",
    "Deliverer",
    "DeliveryReport",
    "Destination",
    "Message",
    "Renderer",
    "Secret",
    "Sender",
    "channel_kind",
    "clean",
    "redact",
    "render",
    "target_id",
]
