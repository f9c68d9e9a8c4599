"""An index of the attempts that failed, by when they finished: error groups read only those.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

INDEX = "ix_wfe_step_runs_errors"


def upgrade() -> None:
    failed = sa.text("error_type IS NOT NULL")
    op.create_index(INDEX, "wfe_step_runs", ["finished_at"], postgresql_where=failed, sqlite_where=failed)


def downgrade() -> None:
    op.drop_index(INDEX, table_name="wfe_step_runs")
