"""Step runs a fan-out hands to its siblings' workers instead of the broker ("carried"), and
how many steps each worker process runs at once.

A wide fan-out publishes a message for as many branches as the live worker processes can run
at once (the sum of their slots); each worker that records a branch takes the next carried
sibling in the same statement. The partial index finds a carried run of an execution without
reading its other runs.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

INDEX = "ix_wfe_step_runs_carried"


def upgrade() -> None:
    with op.batch_alter_table("wfe_step_runs") as batch:
        batch.add_column(sa.Column("carried", sa.Boolean(), nullable=False, server_default=sa.false()))
    with op.batch_alter_table("wfe_workers") as batch:
        batch.add_column(sa.Column("slots", sa.Integer(), nullable=False, server_default=sa.text("1")))
    carried = sa.text("carried")
    op.create_index(
        INDEX, "wfe_step_runs", ["execution_id", "id"], postgresql_where=carried, sqlite_where=carried
    )


def downgrade() -> None:
    op.drop_index(INDEX, "wfe_step_runs")
    with op.batch_alter_table("wfe_workers") as batch:
        batch.drop_column("slots")
    with op.batch_alter_table("wfe_step_runs") as batch:
        batch.drop_column("carried")
