"""Users' tokens can all be revoked at once (a token generation per user), a login whose spent
refresh token came back has every token descended from it revoked (revoked families), and
successful logins stay noted so that they are braked too.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("wfe_users", recreate="never") as batch:  # (in place: see below)
        batch.add_column(
            sa.Column("token_generation", sa.Integer(), nullable=False, server_default=sa.text("0"))
        )
    with op.batch_alter_table("wfe_login_failures") as batch:
        batch.add_column(sa.Column("succeeded", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_table(
        "wfe_revoked_families",
        sa.Column("family", sa.String(64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("family", name="pk_wfe_revoked_families"),
    )
    op.create_index("ix_wfe_revoked_families_expires_at", "wfe_revoked_families", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_wfe_revoked_families_expires_at", table_name="wfe_revoked_families")
    op.drop_table("wfe_revoked_families")
    with op.batch_alter_table("wfe_login_failures") as batch:
        batch.drop_column("succeeded")
    # (SQLite drops the column in place: copying the table would break the keys that name it)
    with op.batch_alter_table("wfe_users", recreate="never") as batch:
        batch.drop_column("token_generation")
