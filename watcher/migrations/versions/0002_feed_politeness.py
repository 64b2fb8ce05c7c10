"""Feed politeness and health: permanent moves, 410, the next poll and why, RSS ttl, health alerts.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("feeds") as batch:
        batch.add_column(sa.Column("moved_to", sa.Text))
        batch.add_column(sa.Column("moved_at", sa.DateTime))
        batch.add_column(sa.Column("redirect_target", sa.Text))
        batch.add_column(sa.Column("redirect_count", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("gone_at", sa.DateTime))
        batch.add_column(sa.Column("next_poll_at", sa.DateTime))
        batch.add_column(sa.Column("next_poll_reason", sa.String(20)))
        batch.add_column(sa.Column("ttl", sa.Float))
        batch.add_column(sa.Column("health_alert", sa.String(20)))
        batch.add_column(sa.Column("health_alert_at", sa.DateTime))


def downgrade() -> None:
    with op.batch_alter_table("feeds") as batch:
        for name in (
            "health_alert_at",
            "health_alert",
            "ttl",
            "next_poll_reason",
            "next_poll_at",
            "gone_at",
            "redirect_count",
            "redirect_target",
            "moved_at",
            "moved_to",
        ):
            batch.drop_column(name)
