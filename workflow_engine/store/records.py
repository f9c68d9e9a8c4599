"""Plain, immutable records of what the store holds; one per table row."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from sqlalchemy.engine import Row

from workflow_engine.core.planner import percent_complete
from workflow_engine.core.states import StepStatus

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


@dataclass(frozen=True, slots=True)
class ClaimedRun:
    """A step attempt just claimed for a worker, with what its agent's context needs."""

    id: int
    execution_id: str
    step_name: str
    attempt: int
    queued_at: datetime
    not_before: datetime | None
    started_at: datetime
    workflow_id: int
    workflow_name: str
    workflow_version: str
    execution_input: dict[str, Any]  # the input the agent gets: a map item's, or the execution's
    execution_metadata: dict[str, Any]
    retries: int
    item_index: int | None = None
    item: Any = None


# the fields of a claimed run its statement's row gives (its start time is the claim's own)
CLAIMED_ROW_FIELDS = tuple(name for name in ClaimedRun.__slots__ if name != "started_at")


# the rows a decision writes, as plain data: an event, and a run taken to run in place (no
# I/O: the decision builds them, the store writes them)

RUN_IN_PLACE = "run in place by the worker"  # the reason recorded on a run taken in place


def event_row(
    execution_id: str,
    step_name: str | None,
    attempt: int | None,
    from_status: str | None,
    to_status: str,
    actor: str,
    created_at: datetime,
    reason: str | None = None,
    details: Any = None,
) -> dict[str, Any]:
    """One row of the events table: a transition, or a repair, of an execution or a step."""
    return {
        "execution_id": execution_id,
        "step_name": step_name,
        "attempt": attempt,
        "from_status": from_status,
        "to_status": str(to_status),
        "actor": actor,
        "reason": reason,
        "details": details,
        "created_at": created_at,
    }


def item_details(index: int | None) -> dict[str, int] | None:
    """An event's details for a map item: which item it is."""
    return None if index is None else {"index": index}


def run_in_place_values(worker: str, task_id: str | None, now: datetime) -> dict[str, Any]:
    """What a run taken to run in place by ``worker`` (in the Celery task ``task_id``) is set to;
    it has no message of its own (``RECORD_ARRIVAL`` in store.arrivals sets the same in SQL).
    Its input stays as it is (see :func:`input_of`)."""
    return {
        "status": StepStatus.RUNNING,
        "worker": worker,
        "task_id": task_id,
        "published_at": None,
        "started_at": now,
        "heartbeat_at": now,
    }


def input_of(row_input: Any, execution_input: Any) -> Any:
    """What a run's agent gets as input: a map item's own, or else the execution's. A run
    stores only its own (NULL: the execution's), never a copy of its execution's."""
    return execution_input if row_input is None else row_input
