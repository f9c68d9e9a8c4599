"""When each rate-limited agent started, per key: the sliding window of fleet-wide rate limits.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "wfe_rate_starts",
        sa.Column("id", ROW_ID, autoincrement=True, nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_wfe_rate_starts"),
    )
    op.create_index("ix_wfe_rate_starts_key_at", "wfe_rate_starts", ["key", "at"])


def downgrade() -> None:
    op.drop_index("ix_wfe_rate_starts_key_at", table_name="wfe_rate_starts")
    op.drop_table("wfe_rate_starts")
