"""Schedules, the fire times they handled, and the changes made to them.

A fire time is one row of ``wfe_schedule_fires``, unique per schedule; the execution it starts
is recorded in it in the same transaction as the execution is created, under an idempotency key
made of the schedule and the fire time: however many coordinators run, a fire time starts at
most one execution.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

JSON = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")
ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
LIVE = "ix_wfe_schedule_fires_live"


def _timestamp(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "wfe_schedules",
        sa.Column("id", ROW_ID, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("workflow", sa.String(100), nullable=False),
        sa.Column("version", sa.String(64), nullable=True),
        sa.Column("cron", sa.String(200), nullable=True),
        sa.Column("every", sa.Integer(), nullable=True),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("input", JSON, nullable=True),
        sa.Column("overlap", sa.String(16), nullable=False),
        sa.Column("catchup_window", sa.Integer(), nullable=False),
        sa.Column("paused", sa.Boolean(), nullable=False),
        _timestamp("next_fire_at"),
        _timestamp("buffered_at", nullable=True),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.ForeignKeyConstraint(["owner_id"], ["wfe_users.id"], name="fk_wfe_schedules_owner_id_wfe_users"),
        sa.PrimaryKeyConstraint("id", name="pk_wfe_schedules"),
        sa.UniqueConstraint("name", name="uq_wfe_schedules_name"),
    )
    op.create_index("ix_wfe_schedules_paused_next_fire_at", "wfe_schedules", ["paused", "next_fire_at"])
    op.create_table(
        "wfe_schedule_fires",
        sa.Column("id", ROW_ID, autoincrement=True, nullable=False),
        sa.Column("schedule_id", ROW_ID, nullable=False),
        _timestamp("fire_time"),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("execution_id", sa.String(36), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("live", sa.Boolean(), nullable=False),
        _timestamp("created_at"),
        sa.ForeignKeyConstraint(
            ["schedule_id"],
            ["wfe_schedules.id"],
            name="fk_wfe_schedule_fires_schedule_id_wfe_schedules",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_wfe_schedule_fires"),
        sa.UniqueConstraint("schedule_id", "fire_time", name="uq_wfe_schedule_fires_schedule_id_fire_time"),
    )
    live = sa.text("live")
    op.create_index(LIVE, "wfe_schedule_fires", ["schedule_id"], postgresql_where=live, sqlite_where=live)
    op.create_table(
        "wfe_schedule_changes",
        sa.Column("id", ROW_ID, autoincrement=True, nullable=False),
        sa.Column("schedule_name", sa.String(100), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("actor", sa.String(150), nullable=False),
        sa.Column("details", JSON, nullable=True),
        _timestamp("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_wfe_schedule_changes"),
    )
    op.create_index(
        "ix_wfe_schedule_changes_schedule_name_id", "wfe_schedule_changes", ["schedule_name", "id"]
    )


def downgrade() -> None:
    op.drop_index("ix_wfe_schedule_changes_schedule_name_id", table_name="wfe_schedule_changes")
    op.drop_table("wfe_schedule_changes")
    op.drop_index(LIVE, table_name="wfe_schedule_fires")
    op.drop_table("wfe_schedule_fires")
    op.drop_index("ix_wfe_schedules_paused_next_fire_at", table_name="wfe_schedules")
    op.drop_table("wfe_schedules")
