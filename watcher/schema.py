"""The database schema: the tables and their indexes, as SQLAlchemy Core.

This is the model of the newest revision; every change here comes with a migration in watcher/migrations/versions
(tests/test_migrations.py compares the two). Queries live in store.py and notify/alertdb.py.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out (SQLite keeps no zone)."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


metadata = sa.MetaData()

meta = sa.Table("meta", metadata, sa.Column("key", sa.String(64), primary_key=True), sa.Column("value", sa.Text))

feeds = sa.Table(
    "feeds",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("title", sa.Text),
    sa.Column("etag", sa.Text),
    sa.Column("last_modified", sa.Text),
    sa.Column("last_poll_at", UTCDateTime),
    sa.Column("last_success_at", UTCDateTime),
    sa.Column("last_status", sa.String(20)),  # ok / not-modified / failed
    sa.Column("last_http_status", sa.Integer),
    sa.Column("last_error", sa.Text),
    sa.Column("last_warning", sa.Text),  # a recoverable problem of the last parse (ill-formed XML...)
    sa.Column("consecutive_failures", sa.Integer, nullable=False, server_default="0"),
    sa.Column("failing_since", UTCDateTime),
    sa.Column("created_at", UTCDateTime, nullable=False),
    # politeness (policy.py): `url` stays the URL of feeds.yaml; `moved_to` is fetched instead after a move
    sa.Column("moved_to", sa.Text),  # where the feed moved (301/308 on several polls); NULL: not moved
    sa.Column("moved_at", UTCDateTime),
    sa.Column("redirect_target", sa.Text),  # the current streak of permanent redirects: where to ...
    sa.Column("redirect_count", sa.Integer, nullable=False, server_default="0"),  # ... and how many polls
    sa.Column("gone_at", UTCDateTime),  # 410 Gone: disabled until the URL changes in feeds.yaml
    sa.Column("next_poll_at", UTCDateTime),  # earliest next poll
    sa.Column("next_poll_reason", sa.String(20)),  # interval / max-age / expires / ttl / retry-after / backoff / gone
    sa.Column("ttl", sa.Float),  # RSS <ttl> in seconds from the last parse (a 304 does not repeat it)
    # feed health (health.py): the condition last alerted, so one alert goes out per change, across restarts
    sa.Column("health_alert", sa.String(20)),  # failing / silent / disabled; NULL: ok
    sa.Column("health_alert_at", UTCDateTime),
    # entry statistics, kept up to date by each poll that stores entries (health checks read them for every feed:
    # aggregating the entries table instead cost a scan of every entry ever stored, per check)
    sa.Column("first_entry_at", UTCDateTime),  # first_seen of the first entries stored (the first poll's backlog)
    sa.Column("last_entry_at", UTCDateTime),  # first_seen of the newest entry
    sa.Column("new_entries", sa.Integer, nullable=False, server_default="0"),  # entries stored after the first ones
)

entries = sa.Table(
    "entries",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("feed_id", sa.Integer, sa.ForeignKey("feeds.id", ondelete="CASCADE"), nullable=False),
    sa.Column("key", sa.Text, nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("link", sa.Text, nullable=False),
    sa.Column("summary", sa.Text, nullable=False),
    sa.Column("content", sa.Text, nullable=False),
    sa.Column("author", sa.Text, nullable=False),
    sa.Column("categories", sa.JSON, nullable=False),
    sa.Column("published", UTCDateTime),
    sa.Column("first_seen", UTCDateTime, nullable=False),
    sa.UniqueConstraint("feed_id", "key", name="uq_entries_feed_key"),
)

hits = sa.Table(
    "hits",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("entry_id", sa.Integer, sa.ForeignKey("entries.id", ondelete="CASCADE"), nullable=False),
    sa.Column("rule", sa.String(200), nullable=False),
    sa.Column("rule_version", sa.String(40), nullable=False),
    sa.Column("tags", sa.JSON, nullable=False),
    sa.Column("severity", sa.String(20), nullable=False),
    sa.Column("matched", sa.JSON, nullable=False),
    sa.Column("details", sa.JSON, nullable=False),
    sa.Column("story", sa.String(320), nullable=False, server_default=""),  # story.story_key(): for cooldowns
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("entry_id", "rule", name="uq_hits_entry_rule"),
)
sa.Index("ix_hits_created", hits.c.created_at)
sa.Index("ix_hits_rule_story", hits.c.rule, hits.c.story, hits.c.created_at)

alerts = sa.Table(
    "alerts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("hit_id", sa.Integer, sa.ForeignKey("hits.id", ondelete="CASCADE"), nullable=False),
    sa.Column("destination", sa.String(200), nullable=False),
    sa.Column("state", sa.String(20), nullable=False),  # pending / sent / dead
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),  # failed delivery attempts
    sa.Column("delivered", sa.JSON, nullable=False),  # target ids of the URLs that already accepted it
    sa.Column("targets", sa.JSON),  # target id -> {label, state, attempts, error, at}: per-URL report
    sa.Column("last_error", sa.Text),  # secret-free
    sa.Column("next_attempt_at", UTCDateTime, nullable=False),  # retry time, or release time of a held alert
    sa.Column("route", sa.String(10)),  # None: not decided yet; instant; digest (held until next_attempt_at)
    sa.Column("hold_reason", sa.String(20)),  # digest / quiet_hours / rate_limit
    sa.Column("decided_at", UTCDateTime),  # when the route was decided (rate limits count instant decisions)
    sa.Column("fallback_from", sa.String(200)),  # the destination that dead-lettered it, for a fallback copy
    sa.Column("last_attempt_at", UTCDateTime),
    sa.Column("sent_at", UTCDateTime),
    sa.Column("age_from", UTCDateTime),  # the dead-letter age counts from here (created_at; reset by a retry)
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("hit_id", "destination", name="uq_alerts_hit_destination"),
)
sa.Index("ix_alerts_state_next", alerts.c.state, alerts.c.next_attempt_at)
sa.Index("ix_alerts_dest_route_decided", alerts.c.destination, alerts.c.route, alerts.c.decided_at)
