"""Hits remember their story (for per-rule cooldowns); the rule index covers rule, story and time.

Hits stored before this revision get an empty story: they never count towards a cooldown, which errs on
the side of alerting.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("hits") as batch:
        batch.add_column(sa.Column("story", sa.String(320), nullable=False, server_default=""))
        batch.drop_index("ix_hits_rule")
        batch.create_index("ix_hits_rule_story", ["rule", "story", "created_at"])


def downgrade() -> None:
    with op.batch_alter_table("hits") as batch:
        batch.drop_index("ix_hits_rule_story")
        batch.create_index("ix_hits_rule", ["rule"])
        batch.drop_column("story")
