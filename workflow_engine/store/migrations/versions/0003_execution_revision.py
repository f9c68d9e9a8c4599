"""Executions carry a revision that moves on with every write of their row, so that an outcome
planned against a known row can be recorded in one statement on condition it is unchanged.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("wfe_executions") as batch:
        batch.add_column(sa.Column("revision", sa.Integer(), nullable=False, server_default=sa.text("0")))


def downgrade() -> None:
    with op.batch_alter_table("wfe_executions") as batch:
        batch.drop_column("revision")
