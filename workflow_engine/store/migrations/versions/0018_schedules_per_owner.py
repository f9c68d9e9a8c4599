"""Schedule names are unique per owner, and a schedule's changes belong to it (its id), not to its
name: another user who creates a schedule with a deleted one's name reads none of its history.

Existing changes are given to the schedule that now bears their name when they were made since
its creation; older ones (of a schedule deleted since) stay detached, read by no view.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("wfe_schedules") as batch:
        batch.drop_constraint("uq_wfe_schedules_name", type_="unique")
        batch.create_unique_constraint("uq_wfe_schedules_owner_id_name", ["owner_id", "name"])
    with op.batch_alter_table("wfe_schedule_changes") as batch:
        batch.add_column(sa.Column("schedule_id", ROW_ID, nullable=True))
        batch.drop_index("ix_wfe_schedule_changes_schedule_name_id")
        batch.create_index("ix_wfe_schedule_changes_schedule_id_id", ["schedule_id", "id"])
    op.execute(
        "UPDATE wfe_schedule_changes SET schedule_id = ("
        " SELECT s.id FROM wfe_schedules s"
        " WHERE s.name = wfe_schedule_changes.schedule_name"
        " AND s.created_at <= wfe_schedule_changes.created_at)"
    )


def downgrade() -> None:
    # names unique again: of a name several owners use, the oldest schedule keeps it and the
    # others are renamed NAME~ID
    op.execute(
        "UPDATE wfe_schedules SET name = substr(name, 1, 80) || '~' || CAST(id AS VARCHAR(20))"
        " WHERE EXISTS (SELECT 1 FROM wfe_schedules older"
        " WHERE older.name = wfe_schedules.name AND older.id < wfe_schedules.id)"
    )
    with op.batch_alter_table("wfe_schedule_changes") as batch:
        batch.drop_index("ix_wfe_schedule_changes_schedule_id_id")
        batch.create_index("ix_wfe_schedule_changes_schedule_name_id", ["schedule_name", "id"])
        batch.drop_column("schedule_id")
    with op.batch_alter_table("wfe_schedules") as batch:
        batch.drop_constraint("uq_wfe_schedules_owner_id_name", type_="unique")
        batch.create_unique_constraint("uq_wfe_schedules_name", ["name"])
