"""Signals sent to executions.

A signal is kept until a wait step takes it (``consumed_step``, ``consumed_attempt``,
``consumed_at``); a signal sent before its step is reached waits here, and several are taken in
the order they were sent.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

JSON = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")
ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "wfe_signals",
        sa.Column("id", ROW_ID, autoincrement=True, nullable=False),
        sa.Column("execution_id", sa.String(36), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("data", JSON, nullable=True),
        sa.Column("sent_by", sa.String(150), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("consumed_step", sa.String(100), nullable=True),
        sa.Column("consumed_attempt", sa.Integer(), nullable=True),
        sa.Column("consumed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["execution_id"],
            ["wfe_executions.id"],
            name="fk_wfe_signals_execution_id_wfe_executions",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_wfe_signals"),
    )
    op.create_index("ix_wfe_signals_execution_id_name_id", "wfe_signals", ["execution_id", "name", "id"])


def downgrade() -> None:
    op.drop_index("ix_wfe_signals_execution_id_name_id", table_name="wfe_signals")
    op.drop_table("wfe_signals")
