"""Step runs carry their step's timeout (a claim sets the deadline in the same statement) and
the id of the Celery task that runs them (what cancelling revokes); join counters move into the
execution's row, which every decision locks anyway (no extra statement per arrival).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


JSON = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("wfe_step_runs") as batch:
        batch.add_column(sa.Column("timeout", sa.Float(), nullable=True))
        batch.add_column(sa.Column("task_id", sa.String(255), nullable=True))
    with op.batch_alter_table("wfe_executions") as batch:
        batch.add_column(sa.Column("barriers", JSON, nullable=True))
    op.drop_table("wfe_join_barriers")
    op.drop_index("ix_wfe_step_runs_status", "wfe_step_runs")
    is_open = sa.text("status IN ('pending', 'queued', 'retrying', 'running', 'waiting')")
    op.create_index(
        "ix_wfe_step_runs_open", "wfe_step_runs", ["status"], postgresql_where=is_open, sqlite_where=is_open
    )


def downgrade() -> None:
    op.drop_index("ix_wfe_step_runs_open", "wfe_step_runs")
    op.create_index("ix_wfe_step_runs_status", "wfe_step_runs", ["status"])
    op.create_table(
        "wfe_join_barriers",
        sa.Column("execution_id", sa.String(36), nullable=False),
        sa.Column("step_name", sa.String(100), nullable=False),
        sa.Column("remaining", sa.Integer(), nullable=False),
        sa.Column("live", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["execution_id"],
            ["wfe_executions.id"],
            name="fk_wfe_join_barriers_execution_id_wfe_executions",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("execution_id", "step_name", name="pk_wfe_join_barriers"),
    )
    with op.batch_alter_table("wfe_executions") as batch:
        batch.drop_column("barriers")
    with op.batch_alter_table("wfe_step_runs") as batch:
        batch.drop_column("task_id")
        batch.drop_column("timeout")
