"""Fire times that started nothing say why: a schedule's skipped, missed and paused fire times
(a run of missed ones is one row, from its first to its last fire time, with their count).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("wfe_schedule_fires") as batch:
        batch.add_column(sa.Column("reason", sa.Text(), nullable=True))
        batch.add_column(sa.Column("last_fire_time", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("fire_count", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("wfe_schedule_fires") as batch:
        batch.drop_column("fire_count")
        batch.drop_column("last_fire_time")
        batch.drop_column("reason")
