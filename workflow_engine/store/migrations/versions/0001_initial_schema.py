"""Initial schema: users, workflows, executions, step runs, events, join barriers, workers.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

JSON = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")
ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _time(name: str, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    users = op.create_table(
        "wfe_users",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("username", sa.String(150), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        _time("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_wfe_users"),
        sa.UniqueConstraint("username", name="uq_wfe_users_username"),
    )
    op.create_table(
        "wfe_workers",
        sa.Column("id", sa.String(255), nullable=False),
        sa.Column("hostname", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("agents", JSON, nullable=False),
        sa.Column("queues", JSON, nullable=False),
        _time("started_at"),
        _time("last_seen"),
        sa.PrimaryKeyConstraint("id", name="pk_wfe_workers"),
    )
    op.create_table(
        "wfe_workflows",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("document", JSON, nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=False),
        _time("created_at"),
        sa.ForeignKeyConstraint(
            ["created_by"], ["wfe_users.id"], name="fk_wfe_workflows_created_by_wfe_users"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_wfe_workflows"),
        sa.UniqueConstraint("name", "version", name="uq_wfe_workflows_name_version"),
    )
    op.create_index("ix_wfe_workflows_created_by_name", "wfe_workflows", ["created_by", "name"])
    op.create_table(
        "wfe_executions",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("workflow_id", sa.Integer(), nullable=False),
        sa.Column("workflow_name", sa.String(100), nullable=False),
        sa.Column("workflow_version", sa.String(64), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("mode", sa.String(8), nullable=False),
        sa.Column("input", JSON, nullable=False),
        sa.Column("metadata", JSON, nullable=False),
        sa.Column("output", JSON, nullable=True),
        sa.Column("error", JSON, nullable=True),
        sa.Column("idempotency_key", sa.String(255), nullable=True),
        sa.Column("checkpoint", JSON, nullable=True),
        sa.Column("total_steps", sa.Integer(), nullable=False),
        sa.Column("resolved_steps", sa.Integer(), nullable=False),
        sa.Column("active_steps", sa.Integer(), nullable=False),
        sa.Column("waiting_steps", sa.Integer(), nullable=False),
        sa.Column("retries", sa.Integer(), nullable=False),
        _time("created_at"),
        _time("started_at", nullable=True),
        _time("finished_at", nullable=True),
        _time("updated_at"),
        sa.ForeignKeyConstraint(["owner_id"], ["wfe_users.id"], name="fk_wfe_executions_owner_id_wfe_users"),
        sa.ForeignKeyConstraint(
            ["workflow_id"], ["wfe_workflows.id"], name="fk_wfe_executions_workflow_id_wfe_workflows"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_wfe_executions"),
        sa.UniqueConstraint("owner_id", "idempotency_key", name="uq_wfe_executions_owner_id_idempotency_key"),
    )
    op.create_index("ix_wfe_executions_created_at", "wfe_executions", ["created_at"])
    op.create_index("ix_wfe_executions_owner_id_created_at", "wfe_executions", ["owner_id", "created_at"])
    op.create_index("ix_wfe_executions_status_created_at", "wfe_executions", ["status", "created_at"])
    op.create_index(
        "ix_wfe_executions_workflow_name_created_at", "wfe_executions", ["workflow_name", "created_at"]
    )
    op.create_table(
        "wfe_events",
        sa.Column("id", ROW_ID, autoincrement=True, nullable=False),
        sa.Column("execution_id", sa.String(36), nullable=False),
        sa.Column("step_name", sa.String(100), nullable=True),
        sa.Column("attempt", sa.Integer(), nullable=True),
        sa.Column("from_status", sa.String(16), nullable=True),
        sa.Column("to_status", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(150), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("details", JSON, nullable=True),
        _time("created_at"),
        sa.ForeignKeyConstraint(
            ["execution_id"],
            ["wfe_executions.id"],
            name="fk_wfe_events_execution_id_wfe_executions",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_wfe_events"),
    )
    op.create_index("ix_wfe_events_execution_id_id", "wfe_events", ["execution_id", "id"])
    op.create_table(
        "wfe_join_barriers",
        sa.Column("execution_id", sa.String(36), nullable=False),
        sa.Column("step_name", sa.String(100), nullable=False),
        sa.Column("remaining", sa.Integer(), nullable=False),
        sa.Column("live", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["execution_id"],
            ["wfe_executions.id"],
            name="fk_wfe_join_barriers_execution_id_wfe_executions",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("execution_id", "step_name", name="pk_wfe_join_barriers"),
    )
    op.create_table(
        "wfe_step_runs",
        sa.Column("id", ROW_ID, autoincrement=True, nullable=False),
        sa.Column("execution_id", sa.String(36), nullable=False),
        sa.Column("step_name", sa.String(100), nullable=False),
        sa.Column("step_type", sa.String(8), nullable=False),
        sa.Column("agent", sa.String(200), nullable=True),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("superseded", sa.Boolean(), nullable=False),
        sa.Column("input", JSON, nullable=True),
        sa.Column("output", JSON, nullable=True),
        sa.Column("error_type", sa.String(64), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("error_code", sa.String(64), nullable=True),
        sa.Column("worker", sa.String(255), nullable=True),
        sa.Column("checkpoint", JSON, nullable=True),
        sa.Column("completed_by", sa.String(150), nullable=True),
        _time("queued_at"),
        _time("not_before", nullable=True),
        _time("published_at", nullable=True),
        _time("started_at", nullable=True),
        _time("heartbeat_at", nullable=True),
        _time("deadline_at", nullable=True),
        _time("finished_at", nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["execution_id"],
            ["wfe_executions.id"],
            name="fk_wfe_step_runs_execution_id_wfe_executions",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_wfe_step_runs"),
        sa.UniqueConstraint(
            "execution_id",
            "step_name",
            "attempt",
            name="uq_wfe_step_runs_execution_id_step_name_attempt",
        ),
    )
    op.create_index("ix_wfe_step_runs_status", "wfe_step_runs", ["status"])
    # the owner of work started without a user; it has no password and cannot log in
    op.bulk_insert(
        users,
        [
            {
                "username": "system",
                "password_hash": None,
                "role": "admin",
                "active": True,
                "created_at": datetime.now(UTC),
            }
        ],
    )


def downgrade() -> None:
    for table in (
        "wfe_step_runs",
        "wfe_join_barriers",
        "wfe_events",
        "wfe_executions",
        "wfe_workflows",
        "wfe_workers",
        "wfe_users",
    ):
        op.drop_table(table)
