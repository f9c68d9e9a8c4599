"""The database schema (SQLAlchemy Core). Alembic migrations must produce exactly this."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy import and_ as sa_and
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator

from workflow_engine.core.states import TERMINAL_EXECUTION


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in Python everywhere; ``timestamptz`` on PostgreSQL, UTC text on SQLite."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; the store only takes aware UTC times")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def result_processor(self, dialect: Dialect, coltype: Any) -> Any:
        """None on PostgreSQL: its sessions speak UTC (store.database), so the driver's aware
        times are UTC already, and reading them costs no Python call."""
        if dialect.name == "postgresql":
            return None
        return super().result_processor(dialect, coltype)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


JSONType = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
RowId = BigInteger().with_variant(Integer(), "sqlite")  # SQLite autoincrements INTEGER keys only

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
    }
)


def _timestamp(name: str, nullable: bool = False) -> Column[Any]:
    return Column(name, UTCDateTime(), nullable=nullable)


users = Table(
    "wfe_users",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("username", String(150), nullable=False, unique=True),
    Column("password_hash", String(255), nullable=True),  # NULL: cannot log in (the system user)
    Column("role", String(16), nullable=False),
    Column("active", Boolean, nullable=False),
    _timestamp("created_at"),
    # tokens carry the generation they were issued in: raising it revokes every one of them
    Column("token_generation", Integer, nullable=False, server_default=text("0")),
)

workflows = Table(
    "wfe_workflows",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(100), nullable=False),
    Column("version", String(64), nullable=False),
    Column("description", Text, nullable=False),
    Column("document", JSONType, nullable=False),
    Column("digest", String(64), nullable=False),
    Column("created_by", Integer, ForeignKey("wfe_users.id"), nullable=False),
    _timestamp("created_at"),
    UniqueConstraint("name", "version"),
    Index(None, "created_by", "name"),
)

# who owns each workflow name: whoever registered its first version (the only one who may add more)
workflow_names = Table(
    "wfe_workflow_names",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("owner_id", Integer, ForeignKey("wfe_users.id"), nullable=False),
    _timestamp("created_at"),
)

# recent failed logins, counted by username and by client address to brake guessing
login_failures = Table(
    "wfe_login_failures",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("username", String(150), nullable=False),
    Column("address", String(64), nullable=False),
    _timestamp("at"),
    # a successful login stays noted too: successes per user are braked as well
    Column("succeeded", Boolean, nullable=False, server_default=false()),
    Index(None, "username", "at"),
    Index(None, "address", "at"),
)

# refresh tokens that may not be used again: exchanged for a new pair, or revoked by a logout
spent_tokens = Table(
    "wfe_spent_tokens",
    metadata,
    Column("jti", String(64), primary_key=True),
    Column("user_id", Integer, nullable=False),
    Column("reason", String(16), nullable=False),  # refreshed, revoked
    _timestamp("expires_at"),  # after which the token is refused anyway: the row may go
    _timestamp("spent_at"),
    Index(None, "expires_at"),
)

# logins whose tokens are all refused: a spent refresh token was presented again (stolen, or
# replayed), so every token descended from that login goes
revoked_families = Table(
    "wfe_revoked_families",
    metadata,
    Column("family", String(64), primary_key=True),
    Column("user_id", Integer, nullable=False),
    _timestamp("expires_at"),  # after which every token of the family is expired anyway
    _timestamp("revoked_at"),
    Index(None, "expires_at"),
)

# refused requests (401, 403) and failed logins: who, when, from where, on which route
test_runs = Table(  # the runs of a registered version's own cases
    "wfe_test_runs",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("workflow_id", Integer, ForeignKey("wfe_workflows.id"), nullable=False),
    Column("workflow_name", String(100), nullable=False),
    Column("workflow_version", String(64), nullable=False),
    Column("owner_id", Integer, ForeignKey("wfe_users.id"), nullable=False),
    Column("passed", Integer, nullable=False),
    Column("failed", Integer, nullable=False),
    Column("cases", JSONType, nullable=False),
    Column("seconds", Float, nullable=False),
    _timestamp("created_at"),
    Index(None, "workflow_id"),
)

audit = Table(
    "wfe_audit",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    _timestamp("at"),
    Column("username", String(150), nullable=True),
    Column("address", String(64), nullable=False),
    Column("route", String(200), nullable=False),
    Column("status", Integer, nullable=False),
    Index(None, "at"),
)

executions = Table(
    "wfe_executions",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("workflow_id", Integer, ForeignKey("wfe_workflows.id"), nullable=False),
    Column("workflow_name", String(100), nullable=False),
    Column("workflow_version", String(64), nullable=False),
    Column("owner_id", Integer, ForeignKey("wfe_users.id"), nullable=False),
    Column("status", String(16), nullable=False),
    Column("mode", String(8), nullable=False),
    Column("input", JSONType, nullable=False),
    Column("metadata", JSONType, nullable=False),
    Column("output", JSONType, nullable=True),
    Column("error", JSONType, nullable=True),
    Column("idempotency_key", String(255), nullable=True),
    Column("checkpoint", JSONType, nullable=True),
    # join → [predecessors not yet resolved, live incoming edges]; kept in the execution's row,
    # which every decision about the execution locks: the last arrival at a join sees 0
    Column("barriers", JSONType, nullable=True),
    Column("total_steps", Integer, nullable=False),
    Column("resolved_steps", Integer, nullable=False),  # succeeded, failed (optional), skipped
    Column("active_steps", Integer, nullable=False),  # pending, queued, retrying, running, timers
    Column("waiting_steps", Integer, nullable=False),  # human tasks and steps awaiting a fix
    Column("retries", Integer, nullable=False),  # times retried from a step
    # map step → {"total", "succeeded", "failed", "running"}: its items, counted as they move
    # (in this row, which every decision locks, so a map's progress is read without its runs)
    Column("maps", JSONType, nullable=True),
    # a child execution: the execution, step and item (a map's) that started it, and how deep
    Column("parent_execution_id", String(36), nullable=True),
    Column("parent_step", String(100), nullable=True),
    Column("parent_index", Integer, nullable=True),
    Column("depth", Integer, nullable=False, server_default=text("0")),
    # the slot it holds under its workflow's concurrency limit (see core/limits.py): while
    # initialized it waits for one, once started it holds one until it ends
    Column("concurrency_key", String(255), nullable=True),
    # moved on by a trigger at every update of the row (migration 0003): a decision planned
    # against a known revision is recorded only if the row is still at it (Coordinator.finish)
    Column("revision", Integer, nullable=False, server_default=text("0")),
    _timestamp("created_at"),
    _timestamp("started_at", nullable=True),
    _timestamp("finished_at", nullable=True),
    _timestamp("updated_at"),
    UniqueConstraint("owner_id", "idempotency_key"),
    Index(None, "owner_id", "created_at"),
    Index(None, "status", "created_at"),
    Index(None, "workflow_name", "created_at"),
    Index(None, "created_at"),
    Index(None, "parent_execution_id", "created_at"),
)
# an owner's executions that have not ended, counted by its quota at each start (store/quotas.py)
_in_flight = executions.c.status.not_in(sorted(TERMINAL_EXECUTION))
Index(
    "ix_wfe_executions_in_flight",
    executions.c.owner_id,
    postgresql_where=_in_flight,
    sqlite_where=_in_flight,
)
_keyed = executions.c.concurrency_key.is_not(None)
Index(
    "ix_wfe_executions_concurrency",
    executions.c.status,
    executions.c.concurrency_key,
    executions.c.created_at,
    postgresql_where=_keyed,
    sqlite_where=_keyed,
)

# a tree of child executions, counted at its top-level execution: the children started in it
# (theirs included) and how many it may start (WFE_MAX_DESCENDANTS when its first one started)
lineages = Table(
    "wfe_lineages",
    metadata,
    Column(
        "root_execution_id", String(36), ForeignKey("wfe_executions.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("started", Integer, nullable=False),
    Column("room", Integer, nullable=False),
)

step_runs = Table(
    "wfe_step_runs",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("execution_id", String(36), ForeignKey("wfe_executions.id", ondelete="CASCADE"), nullable=False),
    Column("step_name", String(100), nullable=False),
    Column("step_type", String(8), nullable=False),
    Column("agent", String(200), nullable=True),
    Column("attempt", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("superseded", Boolean, nullable=False),  # reset by a retry from an upstream step
    # queued without a message: a worker recording a sibling takes it (see decisions.delivery)
    Column("carried", Boolean, nullable=False, server_default=false()),
    Column("timeout", Float, nullable=True),  # seconds: the deadline is set when a worker claims it
    Column("input", JSONType, nullable=True),
    Column("output", JSONType, nullable=True),
    Column("error_type", String(64), nullable=True),
    Column("error_message", Text, nullable=True),
    Column("error_code", String(64), nullable=True),
    Column("worker", String(255), nullable=True),
    Column("task_id", String(255), nullable=True),  # the Celery task running it (several when run in place)
    Column("checkpoint", JSONType, nullable=True),
    Column("completed_by", String(150), nullable=True),
    _timestamp("queued_at"),
    _timestamp("not_before", nullable=True),  # retry backoff or timer: not due before this
    _timestamp("published_at", nullable=True),  # NULL: deferred, the reconciler publishes it
    _timestamp("started_at", nullable=True),
    _timestamp("heartbeat_at", nullable=True),
    _timestamp("deadline_at", nullable=True),
    _timestamp("finished_at", nullable=True),
    Column("duration_ms", Integer, nullable=True),
    # a map step's item: its position in the list, and the item (NULL: the step's own run)
    Column("item_index", Integer, nullable=True),
    Column("item", JSONType, nullable=True),
)
# one run per attempt of a step, and per attempt of each item of a map step; the second index
# (whole, not partial: NULL indices never collide) is also how every read of an execution's runs
# finds them
_step_run = step_runs.c.item_index.is_(None)
Index(
    "uq_wfe_step_runs_attempt",
    step_runs.c.execution_id,
    step_runs.c.step_name,
    step_runs.c.attempt,
    unique=True,
    postgresql_where=_step_run,
    sqlite_where=_step_run,
)
_item_run = step_runs.c.item_index.is_not(None)
Index(
    "uq_wfe_step_runs_item_attempt",
    step_runs.c.execution_id,
    step_runs.c.step_name,
    step_runs.c.item_index,
    step_runs.c.attempt,
    unique=True,
)
# a map's next pending items, found without reading its others: only pending items are indexed,
# so the lowest pending index is the index's first entry however many items have run
_pending_item = sa_and(_item_run, step_runs.c.status == "pending")
Index(
    "ix_wfe_step_runs_pending_items",
    step_runs.c.execution_id,
    step_runs.c.step_name,
    step_runs.c.item_index,
    postgresql_where=_pending_item,
    sqlite_where=_pending_item,
)
# what the reconciler scans: only open runs are indexed, so the index stays as small as the work
# in progress however many runs have finished
OPEN_RUN_STATUSES = ("pending", "queued", "retrying", "running", "waiting")
_open = step_runs.c.status.in_(OPEN_RUN_STATUSES)
Index("ix_wfe_step_runs_open", step_runs.c.status, postgresql_where=_open, sqlite_where=_open)
_failed = step_runs.c.error_type.is_not(None)
Index("ix_wfe_step_runs_errors", step_runs.c.finished_at, postgresql_where=_failed, sqlite_where=_failed)
_carried = step_runs.c.carried
Index(
    "ix_wfe_step_runs_carried",
    step_runs.c.execution_id,
    step_runs.c.id,
    postgresql_where=_carried,
    sqlite_where=_carried,
)

events = Table(
    "wfe_events",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("execution_id", String(36), ForeignKey("wfe_executions.id", ondelete="CASCADE"), nullable=False),
    Column("step_name", String(100), nullable=True),
    Column("attempt", Integer, nullable=True),
    Column("from_status", String(16), nullable=True),
    Column("to_status", String(16), nullable=False),
    Column("actor", String(150), nullable=False),
    Column("reason", Text, nullable=True),
    Column("details", JSONType, nullable=True),
    _timestamp("created_at"),
    Index(None, "execution_id", "id"),
)

signals = Table(
    "wfe_signals",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("execution_id", String(36), ForeignKey("wfe_executions.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(100), nullable=False),
    Column("data", JSONType, nullable=True),
    Column("sent_by", String(150), nullable=True),
    _timestamp("sent_at"),
    # the wait step that took it (None: kept until a wait step for it is reached)
    Column("consumed_step", String(100), nullable=True),
    Column("consumed_attempt", Integer, nullable=True),
    _timestamp("consumed_at", nullable=True),
    Index(None, "execution_id", "name", "id"),
)

# schedules: a workflow started on a cron expression or every N seconds (see core/schedules.py)
schedules = Table(
    "wfe_schedules",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("name", String(100), nullable=False),  # unique per owner: see below
    Column("owner_id", Integer, ForeignKey("wfe_users.id"), nullable=False),
    Column("workflow", String(100), nullable=False),
    Column("version", String(64), nullable=True),  # NULL: the latest version when it fires
    Column("cron", String(200), nullable=True),
    Column("every", Integer, nullable=True),
    Column("timezone", String(64), nullable=False),
    Column("input", JSONType, nullable=True),
    Column("overlap", String(16), nullable=False),
    Column("catchup_window", Integer, nullable=False),
    Column("paused", Boolean, nullable=False),
    _timestamp("next_fire_at"),  # the first fire time not handled yet
    _timestamp("buffered_at", nullable=True),  # a fire time waiting for the previous execution
    _timestamp("created_at"),
    _timestamp("updated_at"),
    Index(None, "paused", "next_fire_at"),
    UniqueConstraint("owner_id", "name"),  # (another user's names are no business of anyone's)
)

# one row per fire time handled: the database refuses a second for the same time
schedule_fires = Table(
    "wfe_schedule_fires",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("schedule_id", RowId, ForeignKey("wfe_schedules.id", ondelete="CASCADE"), nullable=False),
    _timestamp("fire_time"),
    # started, cancelled_other; or, starting nothing: skipped, failed, missed, paused
    Column("action", String(16), nullable=False),
    # the execution it started (NULL while a start is pending: see coordinator/scheduler.py)
    Column("execution_id", String(36), nullable=True),
    Column("error", Text, nullable=True),
    # why it started nothing (skipped, missed, paused); a run of fire times missed or paused is
    # one row, from fire_time to last_fire_time, fire_count of them (NULL: too many to count)
    Column("reason", Text, nullable=True),
    _timestamp("last_fire_time", nullable=True),
    Column("fire_count", Integer, nullable=True),
    # a start whose execution may still run: true until the scheduler sees it ended, so that
    # "is the previous execution still running" reads a few rows, not a schedule's whole past
    Column("live", Boolean, nullable=False),
    _timestamp("created_at"),
    UniqueConstraint("schedule_id", "fire_time"),
)
_live = schedule_fires.c.live
Index("ix_wfe_schedule_fires_live", schedule_fires.c.schedule_id, postgresql_where=_live, sqlite_where=_live)

# every change made to a schedule, with who made it: they belong to the schedule (its id), not to
# its name; when it is deleted they are kept, detached (schedule_id NULL), and no view reads them
schedule_changes = Table(
    "wfe_schedule_changes",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("schedule_id", RowId, nullable=True),
    Column("schedule_name", String(100), nullable=False),
    Column("action", String(32), nullable=False),
    Column("actor", String(150), nullable=False),
    Column("details", JSONType, nullable=True),
    _timestamp("created_at"),
    Index(None, "schedule_id", "id"),
)

# when each rate-limited agent started, per key, for the last period (see store/rates.py)
rate_starts = Table(
    "wfe_rate_starts",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("key", String(255), nullable=False),
    _timestamp("at"),
    Index(None, "key", "at"),
)

workers = Table(
    "wfe_workers",
    metadata,
    Column("id", String(255), primary_key=True),
    Column("hostname", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("agents", JSONType, nullable=False),
    Column("queues", JSONType, nullable=False),
    Column("slots", Integer, nullable=False, server_default=text("1")),  # steps it runs at once
    _timestamp("started_at"),
    _timestamp("last_seen"),
)
