"""The first schema: feeds, entries, hits, alerts (the outbox), meta.

Written out in full, never derived from watcher.store.metadata, so it stays what the first release created.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("meta", sa.Column("key", sa.String(64), primary_key=True), sa.Column("value", sa.Text))
    op.create_table(
        "feeds",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("title", sa.Text),
        sa.Column("etag", sa.Text),
        sa.Column("last_modified", sa.Text),
        sa.Column("last_poll_at", sa.DateTime),
        sa.Column("last_success_at", sa.DateTime),
        sa.Column("last_status", sa.String(20)),
        sa.Column("last_http_status", sa.Integer),
        sa.Column("last_error", sa.Text),
        sa.Column("last_warning", sa.Text),
        sa.Column("consecutive_failures", sa.Integer, nullable=False, server_default="0"),
        sa.Column("failing_since", sa.DateTime),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "entries",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("feed_id", sa.Integer, sa.ForeignKey("feeds.id", ondelete="CASCADE"), nullable=False),
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("link", sa.Text, nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("content", sa.Text, nullable=False),
        sa.Column("author", sa.Text, nullable=False),
        sa.Column("categories", sa.JSON, nullable=False),
        sa.Column("published", sa.DateTime),
        sa.Column("first_seen", sa.DateTime, nullable=False),
        sa.UniqueConstraint("feed_id", "key", name="uq_entries_feed_key"),
    )
    op.create_table(
        "hits",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("entry_id", sa.Integer, sa.ForeignKey("entries.id", ondelete="CASCADE"), nullable=False),
        sa.Column("rule", sa.String(200), nullable=False),
        sa.Column("rule_version", sa.String(40), nullable=False),
        sa.Column("tags", sa.JSON, nullable=False),
        sa.Column("severity", sa.String(20), nullable=False),
        sa.Column("matched", sa.JSON, nullable=False),
        sa.Column("details", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("entry_id", "rule", name="uq_hits_entry_rule"),
    )
    op.create_index("ix_hits_created", "hits", ["created_at"])
    op.create_index("ix_hits_rule", "hits", ["rule"])
    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("hit_id", sa.Integer, sa.ForeignKey("hits.id", ondelete="CASCADE"), nullable=False),
        sa.Column("destination", sa.String(200), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("delivered", sa.JSON, nullable=False),
        sa.Column("last_error", sa.Text),
        sa.Column("next_attempt_at", sa.DateTime, nullable=False),
        sa.Column("sent_at", sa.DateTime),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("hit_id", "destination", name="uq_alerts_hit_destination"),
    )
    op.create_index("ix_alerts_state_next", "alerts", ["state", "next_attempt_at"])


def downgrade() -> None:
    for table in ("alerts", "hits", "entries", "feeds", "meta"):
        op.drop_table(table)
