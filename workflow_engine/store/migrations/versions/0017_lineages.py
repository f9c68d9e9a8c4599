"""Each tree of child executions counts the children started in it, on one row kept for its
top-level execution: one top-level start makes at most WFE_MAX_DESCENDANTS of them.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "wfe_lineages",
        sa.Column("root_execution_id", sa.String(36), nullable=False),
        sa.Column("started", sa.Integer(), nullable=False),
        sa.Column("room", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["root_execution_id"],
            ["wfe_executions.id"],
            name="fk_wfe_lineages_root_execution_id_wfe_executions",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("root_execution_id", name="pk_wfe_lineages"),
    )


def downgrade() -> None:
    op.drop_table("wfe_lineages")
