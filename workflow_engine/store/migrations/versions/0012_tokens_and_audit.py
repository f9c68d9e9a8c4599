"""Refresh tokens that may not be used again, and the audit of refused requests.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "wfe_spent_tokens",
        sa.Column("jti", sa.String(64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(16), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("spent_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("jti", name="pk_wfe_spent_tokens"),
    )
    op.create_index("ix_wfe_spent_tokens_expires_at", "wfe_spent_tokens", ["expires_at"])
    op.create_table(
        "wfe_audit",
        sa.Column("id", ROW_ID, autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("username", sa.String(150), nullable=True),
        sa.Column("address", sa.String(64), nullable=False),
        sa.Column("route", sa.String(200), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_wfe_audit"),
    )
    op.create_index("ix_wfe_audit_at", "wfe_audit", ["at"])


def downgrade() -> None:
    op.drop_index("ix_wfe_audit_at", table_name="wfe_audit")
    op.drop_table("wfe_audit")
    op.drop_index("ix_wfe_spent_tokens_expires_at", table_name="wfe_spent_tokens")
    op.drop_table("wfe_spent_tokens")
