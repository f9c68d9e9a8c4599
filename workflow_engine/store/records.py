"""Plain, immutable records of what the store holds; one per table row."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from sqlalchemy.engine import Row

from workflow_engine.core.planner import percent_complete

R = TypeVar("R")


_FIELDS: dict[type, tuple[str, ...]] = {}  # of each record class, its fields in order


def from_row(cls: type[R], row: Row[Any]) -> R:
    """Build a record from a row holding at least the record's fields."""
    names = _FIELDS.get(cls)
    if names is None:
        names = _FIELDS[cls] = tuple(f.name for f in fields(cls))  # type: ignore[arg-type]
    return cls(*map(row._mapping.__getitem__, names))


@dataclass(frozen=True, slots=True)
class UserRecord:
    id: int
    username: str
    password_hash: str | None
    role: str
    active: bool
    created_at: datetime


@dataclass(frozen=True, slots=True)
class WorkflowRecord:
    id: int
    name: str
    version: str
    description: str
    document: dict[str, Any]
    digest: str
    created_by: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ExecutionRecord:
    id: str
    workflow_id: int
    workflow_name: str
    workflow_version: str
    owner_id: int
    status: str
    mode: str
    input: dict[str, Any]
    metadata: dict[str, Any]
    output: dict[str, Any] | None
    error: dict[str, Any] | None
    idempotency_key: str | None
    checkpoint: dict[str, Any] | None
    barriers: dict[str, list[int]] | None
    total_steps: int
    resolved_steps: int
    active_steps: int
    waiting_steps: int
    retries: int
    revision: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime
    maps: dict[str, dict[str, int]] | None = None  # map step → its items' counts
    parent_execution_id: str | None = None
    parent_step: str | None = None
    parent_index: int | None = None
    depth: int = 0
    concurrency_key: str | None = None

    @property
    def percent_complete(self) -> float:
        return percent_complete(self.resolved_steps, self.total_steps)


@dataclass(frozen=True, slots=True)
class StepRunRecord:
    id: int
    execution_id: str
    step_name: str
    step_type: str
    agent: str | None
    attempt: int
    status: str
    superseded: bool
    timeout: float | None
    input: Any
    output: dict[str, Any] | None
    error_type: str | None
    error_message: str | None
    error_code: str | None
    worker: str | None
    task_id: str | None
    checkpoint: Any
    completed_by: str | None
    queued_at: datetime
    not_before: datetime | None
    published_at: datetime | None
    started_at: datetime | None
    heartbeat_at: datetime | None
    deadline_at: datetime | None
    finished_at: datetime | None
    duration_ms: int | None
    item_index: int | None = None  # a map step's item: its position (None: the step's own run)
    item: Any = None


@dataclass(frozen=True, slots=True)
class EventRecord:
    id: int
    execution_id: str
    step_name: str | None
    attempt: int | None
    from_status: str | None
    to_status: str
    actor: str
    reason: str | None
    details: dict[str, Any] | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class WorkerRecord:
    id: str
    hostname: str
    pid: int
    agents: list[str]
    queues: list[str]
    slots: int
    started_at: datetime
    last_seen: datetime


@dataclass(frozen=True, slots=True)
class SignalRecord:
    id: int
    execution_id: str
    name: str
    data: Any
    sent_by: str | None
    sent_at: datetime
    consumed_step: str | None
    consumed_attempt: int | None
    consumed_at: datetime | None


@dataclass(frozen=True, slots=True)
class ScheduleRecord:
    id: int
    name: str
    owner_id: int
    workflow: str
    version: str | None
    cron: str | None
    every: int | None
    timezone: str
    input: Any
    overlap: str
    catchup_window: int
    paused: bool
    next_fire_at: datetime
    buffered_at: datetime | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class FireRecord:
    """A fire time a schedule handled, and the execution it started (with its status, if read)."""

    id: int
    schedule_id: int
    fire_time: datetime
    action: str
    execution_id: str | None
    error: str | None
    live: bool
    created_at: datetime
    status: str | None = None


@dataclass(frozen=True, slots=True)
class ScheduleChangeRecord:
    id: int
    schedule_name: str
    action: str
    actor: str
    details: Any
    created_at: datetime
