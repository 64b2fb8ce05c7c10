"""The deliverer: drains the outbox, one worker per destination, recording each URL's result as it comes.

One drain:

    decide new alerts (policy.plan: instant, or held for a digest)  -> one transaction
    for each destination at once (a hanging one holds up only itself):
        instant alerts, one by one: each URL not yet delivered -> send -> record at once
        held alerts whose release time came: one digest per URL (50 alerts a message at most) -> record at once
        success everywhere -> sent; a failure -> retry later (backoff with jitter) or dead-letter (+ fallback)

A URL that accepted an alert is recorded before anything else is sent and is never sent that alert again, so a
crash (SIGKILL included) can duplicate at most the one send whose success was not yet recorded. A URL that fails
is not tried again in the same drain: the other alerts for it wait for its retry time (no attempt counted), so a
destination that is down costs one timeout per drain, not one per alert.
"""

from __future__ import annotations

import asyncio
import logging
import random
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TextIO

from ..store import PendingAlert, Store
from . import policy as pol
from .alertdb import AlertDB, Decided, by_destination, hour_ago
from .destinations import Destination, Secret, target_id
from .lock import DeliveryLock
from .policy import DeliveryPolicy, PolicyOverride
from .render import DIGEST_MAX_ALERTS, Message, Renderer
from .send import Sender

log = logging.getLogger("watcher.notify")

MAX_ATTEMPTS = pol.MAX_ATTEMPTS


@dataclass(frozen=True)
class DeliveryReport:
    """What one drain did."""

    sent: int  # alerts fully delivered
    failed: int  # alerts that failed this time (kept for retry, or dead-lettered)
    held: int = 0  # new alerts held for a digest (digest mode, quiet hours, rate limit)
    dead: int = 0  # alerts dead-lettered in this drain
    busy: bool = False  # another process was delivering: this drain did nothing


@dataclass
class _Tally:
    sent: int = 0
    failed: int = 0
    dead: int = 0


@dataclass(frozen=True)
class _Broken:
    reason: str
    retry_at: datetime


@dataclass
class _Progress:
    """One alert during one drain: which URLs took it, which failed."""

    alert: PendingAlert
    delivered: set[str]
    errors: list[str] = field(default_factory=list)
    waiting: list[_Broken] = field(default_factory=list)


class Deliverer:
    """Drains the outbox. Serialised in-process (an asyncio lock) and across processes (a file lock)."""

    def __init__(
        self,
        store: Store,
        destinations: Mapping[str, Destination],
        *,
        rule_policies: Mapping[str, PolicyOverride] | None = None,
        renderer: Renderer | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        sender: Sender | None = None,
        console: TextIO | None = None,
        max_attempts: int | None = None,
        rng: random.Random | None = None,
        lock: DeliveryLock | None = None,
    ) -> None:
        self.store = store
        self.db = AlertDB(store)
        self.destinations = destinations
        self.rule_policies: Mapping[str, PolicyOverride] = rule_policies or {}
        self.renderer = renderer or Renderer()
        self.now = now
        self.sender = sender or Sender()
        self.console = console
        self.max_attempts = max_attempts  # overrides every destination's max_attempts (tests, old callers)
        self.rng = rng or random.Random()
        self.lock = lock or DeliveryLock(None)
        self._lock = asyncio.Lock()

    def update(
        self,
        destinations: Mapping[str, Destination],
        rule_policies: Mapping[str, PolicyOverride] | None = None,
        renderer: Renderer | None = None,
    ) -> None:
        """A reloaded configuration: used from the next drain on."""
        self.destinations = destinations
        self.rule_policies = rule_policies or {}
        if renderer is not None:
            self.renderer = renderer

    def _policy(self, dest: Destination | None) -> DeliveryPolicy:
        p = dest.policy if dest is not None else DeliveryPolicy()
        if self.max_attempts is not None:
            p = replace(p, max_attempts=self.max_attempts)
        return p

    async def next_due(self) -> datetime | None:
        return await asyncio.to_thread(self.db.next_due)

    async def deliver_pending(self, *, wait: float = 0.0) -> DeliveryReport:
        """Send every due alert once. `wait`: how long to wait for another process's drain to finish."""
        async with self._lock, self.lock.hold(wait) as held:
            if not held:
                log.debug("another watcher process is delivering; this drain is skipped")
                return DeliveryReport(0, 0, busy=True)
            now = self.now()
            held_now = await self._decide(now)
            due = await asyncio.to_thread(self.db.due, now)
            tallies = await asyncio.gather(
                *(self._deliver_destination(name, rows) for name, rows in by_destination(due).items())
            )
            return DeliveryReport(
                sent=sum(t.sent for t in tallies),
                failed=sum(t.failed for t in tallies),
                held=held_now,
                dead=sum(t.dead for t in tallies),
            )

    async def _decide(self, now: datetime) -> int:
        undecided = await asyncio.to_thread(self.db.undecided, now)
        if not undecided:
            return 0
        counts = await asyncio.to_thread(self.db.instant_counts, hour_ago(now))
        policies = {name: self._policy(d) for name, d in self.destinations.items()}
        decisions = pol.plan(
            [pol.Undecided(a.id, a.destination, a.rule, a.severity) for a in undecided],
            policies,
            self.rule_policies,
            now,
            counts,
        )
        rows = [Decided(i, d.route, d.reason, d.release_at) for i, d in decisions.items()]
        await asyncio.to_thread(self.db.decide, rows, now)
        held = [r for r in rows if r.route == "digest"]
        for r in held:
            log.info(
                "alert %d held for a digest (%s) until %s", r.alert_id, r.reason, f"{r.release_at:%Y-%m-%d %H:%M} UTC"
            )
        return len(held)

    # --- one destination ---------------------------------------------------------------------------------------

    async def _deliver_destination(self, name: str, rows: list[PendingAlert]) -> _Tally:
        tally = _Tally()
        dest = self.destinations.get(name)
        if dest is None:
            for a in rows:
                await self._fail(a, None, f"destination '{name}' is not configured any more", tally)
            return tally
        if dest.is_console:
            await self._console(rows, tally)
            return tally
        broken: dict[str, _Broken] = {}
        for a in (r for r in rows if r.route != "digest"):
            p = _Progress(a, set(a.delivered))

            def single(s: Secret, a: PendingAlert = a) -> Message:
                return self.renderer.alert(a, s.kind)

            for secret in dest.urls:
                await self._send_to(secret, [p], single, broken)
            await self._settle(dest, [p], tally)
        digest = [r for r in rows if r.route == "digest"]
        if digest:
            progress = [_Progress(a, set(a.delivered)) for a in digest]
            for secret in dest.urls:
                tid = target_id(secret)
                todo = [p for p in progress if tid not in p.delivered]
                chunks = [todo[i : i + DIGEST_MAX_ALERTS] for i in range(0, len(todo), DIGEST_MAX_ALERTS)]
                for n, chunk in enumerate(chunks, 1):
                    alerts = [p.alert for p in chunk]

                    def make(
                        s: Secret, alerts: list[PendingAlert] = alerts, n: int = n, total: int = len(chunks)
                    ) -> Message:
                        return self.renderer.digest(alerts, s.kind, name, part=n, parts=total)

                    await self._send_to(secret, chunk, make, broken)
            sent_before = tally.sent
            await self._settle(dest, progress, tally)
            if tally.sent > sent_before:
                log.info("digest of %d alerts sent to %s", tally.sent - sent_before, name)
        return tally

    async def _send_to(
        self,
        secret: Secret,
        progress: Sequence[_Progress],
        make: Callable[[Secret], Message],
        broken: dict[str, _Broken],
    ) -> None:
        """Send one message covering `progress` to one URL, unless it took them already or failed this drain."""
        tid = target_id(secret)
        todo = [p for p in progress if tid not in p.delivered]
        if not todo:
            return
        if tid in broken:
            for p in todo:
                p.waiting.append(broken[tid])
            return
        ok, reason = await self.sender.send(secret, make(secret))
        now = self.now()
        ids = [p.alert.id for p in todo]
        if ok:
            # record at once: a crash from here on must not send these alerts to this URL again
            await asyncio.to_thread(self.db.record_delivered, ids, tid, secret.label, now)
            for p in todo:
                p.delivered.add(tid)
            return
        await asyncio.to_thread(self.db.record_target_failure, ids, tid, secret.label, reason, now)
        for p in todo:
            p.errors.append(reason)
        first = todo[0].alert
        retry_at = now + pol.retry_delay(first.attempts + 1, self.rng)
        broken[tid] = _Broken(reason, retry_at)

    async def _settle(self, dest: Destination, progress: Sequence[_Progress], tally: _Tally) -> None:
        """After every URL was tried: sent, failed (retry or dead), or waiting for a URL that failed earlier."""
        done = [p for p in progress if not p.errors and not p.waiting]
        if done:
            await asyncio.to_thread(self.db.mark_sent, [p.alert.id for p in done], self.now())
            tally.sent += len(done)
            for p in done:
                if p.alert.route != "digest":
                    log.info("alert %d sent to %s (rule %s)", p.alert.id, dest.name, p.alert.rule)
        for p in progress:
            if p.errors:
                await self._fail(p.alert, dest, "; ".join(p.errors), tally)
            elif p.waiting:
                w = p.waiting[0]
                await asyncio.to_thread(self.db.postpone, [p.alert.id], w.retry_at, f"waiting: {w.reason}")

    async def _fail(self, a: PendingAlert, dest: Destination | None, reason: str, tally: _Tally) -> None:
        now = self.now()
        policy = self._policy(dest)
        plan = pol.after_failure(policy, a.attempts, a.age_from or a.created_at or now, now, self.rng)
        fallback = plan.fallback if plan.fallback in self.destinations and plan.fallback != a.destination else None
        copied = await asyncio.to_thread(
            self.db.mark_failed,
            a.id,
            attempts=plan.attempts,
            error=reason,
            next_attempt_at=plan.next_attempt_at,
            dead=plan.dead,
            now=now,
            fallback=fallback,
        )
        tally.failed += 1
        tally.dead += plan.dead
        log.warning(
            "alert %d to %s failed (attempt %d%s): %s",
            a.id,
            a.destination,
            plan.attempts,
            ", dead-lettered" + (f", handed to fallback '{fallback}'" if copied else "")
            if plan.dead
            else f", next try {plan.next_attempt_at:%H:%M:%S} UTC",
            reason,
        )

    async def _console(self, rows: Sequence[PendingAlert], tally: _Tally) -> None:
        out = self.console or sys.stdout
        instant = [a for a in rows if a.route != "digest"]
        digest = [a for a in rows if a.route == "digest"]
        for a in instant:
            m = self.renderer.alert(a, "text")
            out.write(f"\n=== ALERT {m.title}\n{m.body}\n")
        if digest:
            m = self.renderer.digest(digest, "text", "console")
            out.write(f"\n=== DIGEST {m.title}\n{m.body}\n")
        out.flush()
        await asyncio.to_thread(self.db.mark_sent, [a.id for a in rows], self.now())
        tally.sent += len(rows)
