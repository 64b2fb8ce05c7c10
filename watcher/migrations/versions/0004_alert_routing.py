"""The outbox learns routing: per-URL reports, instant or digest routes, holds, fallbacks, dead-letter age.

Alerts stored before this revision are undecided (route NULL): the deliverer decides their route on its
next drain, as for a new alert. Their dead-letter age counts from their creation.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("alerts") as batch:
        batch.add_column(sa.Column("targets", sa.JSON))
        batch.add_column(sa.Column("route", sa.String(10)))
        batch.add_column(sa.Column("hold_reason", sa.String(20)))
        batch.add_column(sa.Column("decided_at", sa.DateTime))
        batch.add_column(sa.Column("fallback_from", sa.String(200)))
        batch.add_column(sa.Column("last_attempt_at", sa.DateTime))
        batch.add_column(sa.Column("age_from", sa.DateTime))
        batch.create_index("ix_alerts_dest_route_decided", ["destination", "route", "decided_at"])
    op.execute("UPDATE alerts SET age_from = created_at WHERE age_from IS NULL")


def downgrade() -> None:
    with op.batch_alter_table("alerts") as batch:
        batch.drop_index("ix_alerts_dest_route_decided")
        for name in ("age_from", "last_attempt_at", "fallback_from", "decided_at", "hold_reason", "route", "targets"):
            batch.drop_column(name)
