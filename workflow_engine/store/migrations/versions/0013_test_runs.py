"""The runs of a registered version's own test cases (POST /testing/runs).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")


def upgrade() -> None:
    op.create_table(
        "wfe_test_runs",
        sa.Column("id", ROW_ID, autoincrement=True, nullable=False),
        sa.Column("workflow_id", sa.Integer(), nullable=False),
        sa.Column("workflow_name", sa.String(100), nullable=False),
        sa.Column("workflow_version", sa.String(64), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("passed", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("cases", JSON, nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["workflow_id"], ["wfe_workflows.id"], name="fk_wfe_test_runs_workflow_id_wfe_workflows"
        ),
        sa.ForeignKeyConstraint(["owner_id"], ["wfe_users.id"], name="fk_wfe_test_runs_owner_id_wfe_users"),
        sa.PrimaryKeyConstraint("id", name="pk_wfe_test_runs"),
    )
    op.create_index("ix_wfe_test_runs_workflow_id", "wfe_test_runs", ["workflow_id"])


def downgrade() -> None:
    op.drop_index("ix_wfe_test_runs_workflow_id", table_name="wfe_test_runs")
    op.drop_table("wfe_test_runs")
