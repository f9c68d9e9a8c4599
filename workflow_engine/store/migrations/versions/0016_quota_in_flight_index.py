"""Quotas: an index of each owner's executions that have not ended, which a start counts.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

_IN_FLIGHT = sa.text("status NOT IN ('cancelled', 'completed', 'failed')")


def upgrade() -> None:
    op.create_index(
        "ix_wfe_executions_in_flight",
        "wfe_executions",
        ["owner_id"],
        postgresql_where=_IN_FLIGHT,
        sqlite_where=_IN_FLIGHT,
    )


def downgrade() -> None:
    op.drop_index("ix_wfe_executions_in_flight", table_name="wfe_executions")
