"""The concurrency slot an execution waits for or holds (its workflow's concurrency limit).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

INDEX = "ix_wfe_executions_concurrency"


def upgrade() -> None:
    with op.batch_alter_table("wfe_executions") as batch:
        batch.add_column(sa.Column("concurrency_key", sa.String(255), nullable=True))
    keyed = sa.text("concurrency_key IS NOT NULL")
    op.create_index(
        INDEX,
        "wfe_executions",
        ["status", "concurrency_key", "created_at"],
        postgresql_where=keyed,
        sqlite_where=keyed,
    )


def downgrade() -> None:
    op.drop_index(INDEX, table_name="wfe_executions")
    with op.batch_alter_table("wfe_executions") as batch:
        batch.drop_column("concurrency_key")
