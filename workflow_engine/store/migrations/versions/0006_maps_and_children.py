"""Map steps and child executions.

A map step's items are step runs of the step with their position (``item_index``) and the item;
each run is unique per attempt of a step, or of an item. The execution's row counts each map's
items (``maps``), and a child execution knows the execution, step and item that started it.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

JSON = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")
OLD_UNIQUE = "uq_wfe_step_runs_execution_id_step_name_attempt"
PARENT = "ix_wfe_executions_parent_execution_id_created_at"


def upgrade() -> None:
    with op.batch_alter_table("wfe_step_runs") as batch:
        batch.add_column(sa.Column("item_index", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("item", JSON, nullable=True))
        batch.drop_constraint(OLD_UNIQUE, type_="unique")
    step_run = sa.text("item_index IS NULL")
    op.create_index(
        "uq_wfe_step_runs_attempt",
        "wfe_step_runs",
        ["execution_id", "step_name", "attempt"],
        unique=True,
        postgresql_where=step_run,
        sqlite_where=step_run,
    )
    op.create_index(
        "uq_wfe_step_runs_item_attempt",
        "wfe_step_runs",
        ["execution_id", "step_name", "item_index", "attempt"],
        unique=True,
    )
    pending_item = sa.text("item_index IS NOT NULL AND status = 'pending'")
    op.create_index(
        "ix_wfe_step_runs_pending_items",
        "wfe_step_runs",
        ["execution_id", "step_name", "item_index"],
        postgresql_where=pending_item,
        sqlite_where=pending_item,
    )
    # plain ALTER TABLE (a batch would rebuild the table on SQLite, and lose its revision trigger)
    op.add_column("wfe_executions", sa.Column("maps", JSON, nullable=True))
    op.add_column("wfe_executions", sa.Column("parent_execution_id", sa.String(36), nullable=True))
    op.add_column("wfe_executions", sa.Column("parent_step", sa.String(100), nullable=True))
    op.add_column("wfe_executions", sa.Column("parent_index", sa.Integer(), nullable=True))
    op.add_column(
        "wfe_executions", sa.Column("depth", sa.Integer(), nullable=False, server_default=sa.text("0"))
    )
    op.create_index(PARENT, "wfe_executions", ["parent_execution_id", "created_at"])


def downgrade() -> None:
    op.drop_index(PARENT, "wfe_executions")
    with op.batch_alter_table("wfe_executions") as batch:
        for column in ("depth", "parent_index", "parent_step", "parent_execution_id", "maps"):
            batch.drop_column(column)
    if op.get_bind().dialect.name == "sqlite":  # the table was rebuilt: its trigger (0003) again
        op.execute(
            "CREATE TRIGGER IF NOT EXISTS wfe_executions_revision AFTER UPDATE ON wfe_executions "
            "FOR EACH ROW WHEN NEW.revision = OLD.revision BEGIN "
            "UPDATE wfe_executions SET revision = OLD.revision + 1 WHERE id = NEW.id; END"
        )
    op.drop_index("ix_wfe_step_runs_pending_items", "wfe_step_runs")
    op.drop_index("uq_wfe_step_runs_item_attempt", "wfe_step_runs")
    op.drop_index("uq_wfe_step_runs_attempt", "wfe_step_runs")
    with op.batch_alter_table("wfe_step_runs") as batch:
        batch.create_unique_constraint(OLD_UNIQUE, ["execution_id", "step_name", "attempt"])
        batch.drop_column("item")
        batch.drop_column("item_index")
