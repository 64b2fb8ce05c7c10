"""`watcher notify test`: a made-up alert sent straight to destinations (not through the outbox)."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TextIO

from .destinations import Destination
from .render import Renderer, sample_alert
from .send import Sender


@dataclass(frozen=True)
class ProbeResult:
    """One URL's answer to the test alert; secret-free."""

    destination: str  # destination name
    target: str  # the URL's label, e.g. "slack[0] (slack://)", or "console"
    ok: bool
    reason: str = ""  # why it failed, secrets redacted


async def probe(
    destinations: Mapping[str, Destination],
    names: Sequence[str],
    *,
    sender: Sender,
    renderer: Renderer,
    console: TextIO | None = None,
) -> list[ProbeResult]:
    """Send the test alert to each URL of each named destination, one after the other."""
    results: list[ProbeResult] = []
    for name in names:
        dest = destinations[name]
        alert = sample_alert(name)
        if dest.is_console:
            m = renderer.alert(alert, "text")
            out = console or sys.stdout
            out.write(f"\n=== ALERT {m.title}\n{m.body}\n")
            out.flush()
            results.append(ProbeResult(name, "console", True))
            continue
        for secret in dest.urls:
            ok, reason = await sender.send(secret, renderer.alert(alert, secret.kind))
            results.append(ProbeResult(name, secret.label, ok, reason))
    return results
