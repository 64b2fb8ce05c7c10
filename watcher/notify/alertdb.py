"""The outbox's queries: which alerts are due, and what happened to each (per URL). Short transactions only.

Every write that follows a send is its own transaction, committed before the next send starts: a crash can
then lose at most the record of the one send in flight (see README, "Delivery guarantees").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..store import PendingAlert, Store, alerts, entries, feeds, hits


@dataclass(frozen=True)
class Decided:
    """A routing decision to store."""

    alert_id: int
    route: str  # instant / digest
    reason: str | None  # hold reason
    release_at: datetime


def _iso(dt: datetime | None) -> str | None:
    return dt.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z") if dt else None


_COLUMNS = (
    alerts.c.id,
    alerts.c.destination,
    alerts.c.state,
    alerts.c.attempts,
    alerts.c.delivered,
    alerts.c.targets,
    alerts.c.last_error,
    alerts.c.next_attempt_at,
    alerts.c.route,
    alerts.c.hold_reason,
    alerts.c.fallback_from,
    alerts.c.last_attempt_at,
    alerts.c.sent_at,
    alerts.c.age_from,
    alerts.c.created_at,
    hits.c.rule,
    hits.c.severity,
    hits.c.tags,
    hits.c.matched,
    hits.c.details,
    entries.c.title,
    entries.c.link,
    entries.c.summary,
    entries.c.published,
    entries.c.first_seen,
    feeds.c.name.label("feed"),
)


def _joined() -> sa.Select[Any]:
    return (
        sa.select(*_COLUMNS)
        .join(hits, alerts.c.hit_id == hits.c.id)
        .join(entries, hits.c.entry_id == entries.c.id)
        .join(feeds, entries.c.feed_id == feeds.c.id)
    )


def _alert(r: Any) -> PendingAlert:
    return PendingAlert(
        id=r.id,
        destination=r.destination,
        attempts=r.attempts,
        delivered=tuple(r.delivered or ()),
        rule=r.rule,
        severity=r.severity,
        tags=tuple(r.tags),
        matched=tuple(r.matched),
        details=r.details or {},
        title=r.title,
        link=r.link,
        summary=r.summary,
        feed=r.feed,
        published=r.published,
        first_seen=r.first_seen,
        route=r.route,
        hold_reason=r.hold_reason,
        created_at=r.created_at,
        age_from=r.age_from or r.created_at,
        targets=r.targets or {},
    )


class AlertDB:
    """Outbox reads and writes on top of a :class:`~watcher.store.Store`."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # --- reads -------------------------------------------------------------------------------------------------

    def undecided(self, now: datetime, limit: int = 1000) -> list[PendingAlert]:
        """New alerts whose route (instant or digest) is not decided yet, oldest first."""
        q = (
            _joined()
            .where(alerts.c.state == "pending", alerts.c.route.is_(None), alerts.c.next_attempt_at <= now)
            .order_by(alerts.c.id)
            .limit(limit)
        )
        with self.store.begin() as conn:
            return [_alert(r) for r in conn.execute(q)]

    def due(self, now: datetime, limit: int = 2000) -> list[PendingAlert]:
        """Pending alerts to send now: instant ones due for a (re)try, and held ones whose release time came."""
        q = _joined().where(alerts.c.state == "pending", alerts.c.next_attempt_at <= now).order_by(alerts.c.id)
        with self.store.begin() as conn:
            return [_alert(r) for r in conn.execute(q.limit(limit))]

    def instant_counts(self, since: datetime) -> dict[str, int]:
        """Instant alerts decided per destination since `since` (what a rate limit counts)."""
        q = (
            sa.select(alerts.c.destination, sa.func.count())
            .where(alerts.c.route == "instant", alerts.c.decided_at > since)
            .group_by(alerts.c.destination)
        )
        with self.store.begin() as conn:
            return {r[0]: r[1] for r in conn.execute(q)}

    def next_due(self) -> datetime | None:
        """The earliest time a pending alert becomes due (a digest's release, a retry)."""
        with self.store.begin() as conn:
            return conn.execute(
                sa.select(sa.func.min(alerts.c.next_attempt_at)).where(alerts.c.state == "pending")
            ).scalar()

    def listing(self, state: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """Alerts for `watcher alerts`, newest first; secret-free (URLs appear as their labels)."""
        q = _joined().order_by(alerts.c.id.desc()).limit(limit)
        if state is not None:
            q = q.where(alerts.c.state == state)
        with self.store.begin() as conn:
            rows = conn.execute(q).all()
        return [
            {
                "id": r.id,
                "state": r.state,
                "destination": r.destination,
                "route": r.route,
                "held_for": r.hold_reason if r.state == "pending" and r.route == "digest" else None,
                "fallback_from": r.fallback_from,
                "rule": r.rule,
                "severity": r.severity,
                "tags": list(r.tags),
                "title": r.title,
                "link": r.link,
                "feed": r.feed,
                "attempts": r.attempts,
                "created_at": _iso(r.created_at),
                "next_attempt_at": _iso(r.next_attempt_at) if r.state == "pending" else None,
                "last_attempt_at": _iso(r.last_attempt_at),
                "sent_at": _iso(r.sent_at),
                "last_error": r.last_error,
                "targets": [
                    {"target": t.get("label"), **{k: v for k, v in t.items() if k != "label"}}
                    for t in (r.targets or {}).values()
                ],
            }
            for r in rows
        ]

    def counts(self) -> dict[str, int]:
        with self.store.begin() as conn:
            rows = conn.execute(sa.select(alerts.c.state, sa.func.count()).group_by(alerts.c.state)).all()
        return {r[0]: r[1] for r in rows}

    # --- writes ------------------------------------------------------------------------------------------------

    def decide(self, decisions: Iterable[Decided], now: datetime) -> None:
        with self.store.begin() as conn:
            for d in decisions:
                conn.execute(
                    sa.update(alerts)
                    .where(alerts.c.id == d.alert_id, alerts.c.route.is_(None))
                    .values(route=d.route, hold_reason=d.reason, decided_at=now, next_attempt_at=d.release_at)
                )

    def record_delivered(self, ids: Sequence[int], target: str, label: str, now: datetime) -> None:
        """URL `target` accepted these alerts: never send them to it again. Called right after each send."""
        with self.store.begin() as conn:
            for row in conn.execute(
                sa.select(alerts.c.id, alerts.c.delivered, alerts.c.targets).where(alerts.c.id.in_(ids))
            ):
                delivered = list(row.delivered or [])
                if target not in delivered:
                    delivered.append(target)
                targets = dict(row.targets or {})
                before = targets.get(target, {})
                targets[target] = {
                    "label": label,
                    "state": "sent",
                    "attempts": int(before.get("attempts", 0)) + 1,
                    "error": None,
                    "at": _iso(now),
                }
                conn.execute(
                    sa.update(alerts).where(alerts.c.id == row.id).values(delivered=delivered, targets=targets)
                )

    def record_target_failure(self, ids: Sequence[int], target: str, label: str, error: str, now: datetime) -> None:
        with self.store.begin() as conn:
            self._target_failure(conn, ids, target, label, error, now)

    @staticmethod
    def _target_failure(
        conn: Connection, ids: Sequence[int], target: str, label: str, error: str, now: datetime
    ) -> None:
        for row in conn.execute(sa.select(alerts.c.id, alerts.c.targets).where(alerts.c.id.in_(ids))):
            targets = dict(row.targets or {})
            before = targets.get(target, {})
            targets[target] = {
                "label": label,
                "state": "failed",
                "attempts": int(before.get("attempts", 0)) + 1,
                "error": error[:500],
                "at": _iso(now),
            }
            conn.execute(sa.update(alerts).where(alerts.c.id == row.id).values(targets=targets))

    def mark_sent(self, ids: Sequence[int], now: datetime) -> None:
        with self.store.begin() as conn:
            conn.execute(
                sa.update(alerts)
                .where(alerts.c.id.in_(ids))
                .values(state="sent", sent_at=now, last_attempt_at=now, last_error=None)
            )

    def mark_failed(
        self,
        alert_id: int,
        *,
        attempts: int,
        error: str,
        next_attempt_at: datetime,
        dead: bool,
        now: datetime,
        fallback: str | None = None,
    ) -> bool:
        """Record a failed attempt; when dead and `fallback` is set, queue a copy there. True if a copy was made."""
        copied = False
        with self.store.begin() as conn:
            conn.execute(
                sa.update(alerts)
                .where(alerts.c.id == alert_id)
                .values(
                    state="dead" if dead else "pending",
                    attempts=attempts,
                    last_error=error[:2000],
                    next_attempt_at=next_attempt_at,
                    last_attempt_at=now,
                )
            )
            if dead and fallback:
                row = conn.execute(
                    sa.select(alerts.c.hit_id, alerts.c.destination).where(alerts.c.id == alert_id)
                ).one()
                res = conn.execute(
                    self.store._insert(conn, alerts)
                    .values(
                        hit_id=row.hit_id,
                        destination=fallback,
                        state="pending",
                        attempts=0,
                        delivered=[],
                        fallback_from=row.destination,
                        next_attempt_at=now,
                        created_at=now,
                        age_from=now,
                    )
                    .on_conflict_do_nothing(index_elements=["hit_id", "destination"])
                    .returning(alerts.c.id)
                )
                copied = res.scalar() is not None
        return copied

    def postpone(self, ids: Sequence[int], until: datetime, error: str) -> None:
        """Not tried this time (their URL failed for another alert just before): wait, no attempt counted."""
        with self.store.begin() as conn:
            conn.execute(
                sa.update(alerts)
                .where(alerts.c.id.in_(ids), alerts.c.state == "pending")
                .values(next_attempt_at=until, last_error=error[:2000])
            )

    def retry_all(self, now: datetime) -> dict[str, int]:
        """`watcher alerts retry`: every pending alert due now, every dead one pending again with fresh counts."""
        with self.store.begin() as conn:
            dead = conn.execute(
                sa.update(alerts)
                .where(alerts.c.state == "dead")
                .values(state="pending", attempts=0, age_from=now, next_attempt_at=now)
            ).rowcount
            pending = conn.execute(
                sa.update(alerts).where(alerts.c.state == "pending").values(next_attempt_at=now)
            ).rowcount
        return {"dead": dead, "pending": pending - dead}


def hour_ago(now: datetime) -> datetime:
    return now - timedelta(hours=1)


def by_destination(rows: Iterable[PendingAlert]) -> Mapping[str, list[PendingAlert]]:
    out: dict[str, list[PendingAlert]] = {}
    for r in rows:
        out.setdefault(r.destination, []).append(r)
    return out
