"""Read models: an execution as users see it, built from its record, runs and definition.

One vocabulary for every interface: the Python views, the command line's ``--json`` and the REST
API show the same documents, made here. An execution's input is ``input_data`` and an attempt's
``input_data`` and ``output_data`` (the REST API's names); every time is ISO 8601 in UTC with a
``Z`` (:func:`timestamp`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from workflow_engine.core import mapping
from workflow_engine.core.payloads import READ_DEPTH, payload_problem
from workflow_engine.core.secrets import masked
from workflow_engine.core.states import OPEN_STEP, StepStatus
from workflow_engine.definitions.model import StepType, WorkflowDefinition
from workflow_engine.reasons import Situation, Workers, execution_reason, row_reason, step_reasons
from workflow_engine.store.records import EventRecord, ExecutionRecord, StepRunRecord, input_of


def timestamp(moment: datetime) -> str:
    """The one way every view writes a time: ISO 8601 in UTC, to the microsecond, with a ``Z``
    (a time without a zone is taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _iso(moment: datetime | None) -> str | None:
    return timestamp(moment) if moment is not None else None


@dataclass(frozen=True)
class StepView:
    name: str
    type: str
    status: str
    attempts: int
    duration_ms: int | None
    error: dict[str, Any] | None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    output: Any = None
    items: dict[str, int] | None = None  # a map step's: total, done, failed, running, pending
    reason: str | None = None  # why it is not running (see workflow_engine.reasons)

    def to_json(self) -> dict[str, Any]:
        """One step of the execution document (``items``: a map's counts, else null)."""
        return {
            "name": self.name,
            "type": self.type,
            "status": self.status,
            "attempts": self.attempts,
            "duration_ms": self.duration_ms,
            "error": self.error,
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "reason": self.reason,
            "items": self.items,
        }


@dataclass(frozen=True)
class ChildView:
    """A child execution, as its parent lists it."""

    execution_id: str
    workflow: str
    version: str
    status: str
    step: str
    index: int | None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ExecutionView:
    id: str
    workflow: str
    version: str
    status: str
    mode: str
    percent_complete: float
    input_data: dict[str, Any]
    metadata: dict[str, Any]
    output: dict[str, Any] | None
    error: dict[str, Any] | None
    retries: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    steps: list[StepView] = field(default_factory=list)
    parent_execution_id: str | None = None
    parent_step: str | None = None
    parent_index: int | None = None
    children: list[ChildView] = field(default_factory=list)
    # why it is not running (or not all of it), the monitor's sentence: "waiting for a
    # concurrency slot", "step 'b' queued on wfe.steps, which no live worker consumes", ...
    reason: str | None = None

    @property
    def current_steps(self) -> list[str]:
        return [
            step.name for step in self.steps if step.status in OPEN_STEP and step.status != StepStatus.PENDING
        ]

    @property
    def duration_ms(self) -> int | None:
        if self.started_at is None:
            return None
        end = self.finished_at
        return int((end - self.started_at).total_seconds() * 1000) if end else None

    def to_json(self) -> dict[str, Any]:
        """The contract's execution document."""
        return {
            "execution_id": self.id,
            "workflow": self.workflow,
            "version": self.version,
            "status": self.status,
            "mode": self.mode,
            "percent_complete": self.percent_complete,
            "current_steps": self.current_steps,
            "reason": self.reason,
            "input_data": self.input_data,
            "metadata": self.metadata,
            "output": self.output,
            "error": self.error,
            "retries": self.retries,
            "created_at": _iso(self.created_at),
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "duration_ms": self.duration_ms,
            "steps": [step.to_json() for step in self.steps],
            "parent_execution_id": self.parent_execution_id,
            "parent_step": self.parent_step,
            "parent_index": self.parent_index,
            "children": [child.to_json() for child in self.children],
        }


def step_views(
    definition: WorkflowDefinition, runs: list[StepRunRecord], maps: dict[str, Any] | None = None
) -> list[StepView]:
    """One line per step in definition order: its current run's status, and its attempts (a
    map's progress from ``maps``, the execution's counts of its items)."""
    current = latest_runs(runs)
    attempts: dict[str, int] = {}
    for run in runs:
        if run.item_index is None and run.started_at is not None:
            attempts[run.step_name] = attempts.get(run.step_name, 0) + 1
    views = []
    for step in definition.steps:
        latest = current.get(step.name)
        error = None
        if latest is not None and latest.error_type:
            error = {"type": latest.error_type, "message": latest.error_message, "code": latest.error_code}
        views.append(
            StepView(
                name=step.name,
                type=step.type.value,
                status=latest.status if latest else StepStatus.PENDING,
                attempts=attempts.get(step.name, 0),
                duration_ms=latest.duration_ms if latest else None,
                error=error,
                started_at=latest.started_at if latest else None,
                finished_at=latest.finished_at if latest else None,
                output=readable(latest.output) if latest else None,
                items=mapping.summary(maps[step.name]) if maps and step.name in maps and latest else None,
            )
        )
    return views


def latest_runs(runs: list[StepRunRecord]) -> dict[str, StepRunRecord]:
    """Each step's current attempt: its latest that a retry has not superseded (map items aside)."""
    current: dict[str, StepRunRecord] = {}
    for run in runs:
        if run.item_index is not None or run.superseded:
            continue
        previous = current.get(run.step_name)
        if previous is None or run.attempt > previous.attempt:
            current[run.step_name] = run
    return current


def readable(value: Any) -> Any:
    """``value`` as every view shows it: its secrets as ``***``, or in its place a note saying
    why it cannot be shown (a row written before the engine refused such data, see
    :mod:`workflow_engine.core.payloads`, never breaks a view or a listing)."""
    if value is None:
        return None
    problem = payload_problem(value, max_depth=READ_DEPTH)
    if problem is None:
        return masked(value)
    return {"unreadable": f"stored data that cannot be shown: {problem}"}


def execution_view(
    record: ExecutionRecord,
    definition: WorkflowDefinition | None = None,
    runs: list[StepRunRecord] | None = None,
    children: list[ExecutionRecord] | None = None,
    workers: Workers | None = None,
) -> ExecutionView:
    """The execution as users see it; with its ``definition`` and ``runs``, its steps too, and
    with what its ``workers`` say, why each step (and the execution) is not running."""
    steps: list[StepView] = []
    reason = row_reason(record.status, record.concurrency_key)
    if definition is not None and runs is not None:
        steps = step_views(definition, runs, record.maps)
        if workers is not None:
            situation = Situation(
                record.status,
                reason,
                {step.name: step.status for step in steps},
                workers.live_queues,
                workers.default_queue,
                workers.now,
            )
            reasons = step_reasons(definition.steps, latest_runs(runs), definition.graph, situation)
            steps = [replace(step, reason=reasons.get(step.name)) for step in steps]
            reason = execution_reason(reasons, definition.graph, situation)
    return ExecutionView(
        id=record.id,
        workflow=record.workflow_name,
        version=record.workflow_version,
        status=record.status,
        mode=record.mode,
        percent_complete=record.percent_complete,
        input_data=readable(record.input),
        metadata=readable(record.metadata),
        output=readable(record.output),
        error=readable(record.error),
        retries=record.retries,
        created_at=record.created_at,
        started_at=record.started_at,
        finished_at=record.finished_at,
        steps=steps,
        parent_execution_id=record.parent_execution_id,
        parent_step=record.parent_step,
        parent_index=record.parent_index,
        reason=reason,
        children=[
            ChildView(
                c.id, c.workflow_name, c.workflow_version, c.status, c.parent_step or "", c.parent_index
            )
            for c in children or []
        ],
    )


@dataclass(frozen=True)
class TaskView:
    """A step waiting for a person: a human task, or a step whose data needs a fix."""

    execution_id: str
    workflow: str
    version: str
    step: str
    kind: str  # "human" or "fix"
    description: str
    assignees: list[str]
    input_schema: dict[str, Any] | None
    error: dict[str, Any] | None
    waiting_since: datetime | None


def task_view(run: StepRunRecord, execution: ExecutionRecord, definition: WorkflowDefinition) -> TaskView:
    step = definition.step(run.step_name)
    error = (
        {"type": run.error_type, "message": run.error_message, "code": run.error_code}
        if run.error_type
        else None
    )
    return TaskView(
        execution_id=execution.id,
        workflow=execution.workflow_name,
        version=execution.workflow_version,
        step=run.step_name,
        kind="human" if run.step_type == "human" else "fix",
        description=step.description,
        assignees=list(step.assignees),
        input_schema=step.input_schema,
        error=error,
        waiting_since=run.finished_at or run.started_at,
    )


def attempt_input(run: StepRunRecord, execution_input: Any) -> Any:
    """The input an attempt shows: its own, or an agent's run's execution's (which its row
    does not copy)."""
    return input_of(run.input, execution_input) if run.step_type == StepType.AGENT else run.input


def run_json(run: StepRunRecord, execution_input: Any) -> dict[str, Any]:
    """One attempt of an execution whose input is ``execution_input``, as logs show it
    (``timestamp``: when it started, or was queued)."""
    return {
        "id": run.id,
        "step_name": run.step_name,
        "step_type": run.step_type,
        "agent": run.agent,
        "attempt": run.attempt,
        "index": run.item_index,
        "status": run.status,
        "superseded": run.superseded,
        "input_data": readable(attempt_input(run, execution_input)),
        "output_data": readable(run.output),
        "error_type": run.error_type,
        "error_message": run.error_message,
        "error_code": run.error_code,
        "worker": run.worker,
        "completed_by": run.completed_by,
        "timestamp": _iso(run.started_at or run.queued_at),
        "queued_at": _iso(run.queued_at),
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at),
        "duration_ms": run.duration_ms,
    }


def event_json(event: EventRecord) -> dict[str, Any]:
    """One transition, as the history shows it."""
    data = asdict(event)
    data["details"] = masked(data["details"])
    data["created_at"] = _iso(event.created_at)
    return data
