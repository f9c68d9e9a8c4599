"""Step runs as a unit writes them: a new run's columns, the execution counter a run counts
toward, when a timer fires, and the reasons a run's history gives. Plain data in, plain data
out: :class:`~workflow_engine.decisions.unit.Unit` applies them."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from workflow_engine.core.expressions import Expression, compile_expression
from workflow_engine.core.states import ExecutionStatus, StepStatus
from workflow_engine.definitions.model import StepDefinition, StepType
from workflow_engine.errors import ExpressionError
from workflow_engine.store.records import SignalRecord, StepRunRecord

S = StepStatus


def bucket(status: str, step_type: str, current: bool = False) -> str | None:
    """Which execution counter a run in ``status`` belongs to.

    A failed attempt resolves its step only when it is the step's current run (no retry
    follows); while runs move, the code that decides the step failed for good counts it.
    """
    if status in (S.QUEUED, S.RETRYING, S.RUNNING):
        return "active"
    if status == S.WAITING:
        return "active" if step_type == StepType.TIMER else "waiting"
    if status in (S.SUCCEEDED, S.SKIPPED) or (current and status == S.FAILED):
        return "resolved"
    return None


# bucket() of every status, for a timer's run or another's: (status, timer) -> counter
BUCKETS: dict[tuple[str, bool], str | None] = {
    (status, timer): bucket(status, StepType.TIMER if timer else StepType.AGENT)
    for status in S
    for timer in (False, True)
}


def counters_of(runs: Iterable[StepRunRecord]) -> dict[str, int]:
    """The counters recomputed from each step's current run."""
    counts = {"active": 0, "waiting": 0, "resolved": 0}
    for run in runs:
        which = bucket(run.status, run.step_type, current=True)
        if which:
            counts[which] += 1
    return counts


def new_execution(
    execution_id: str,
    workflow: Any,
    owner_id: int,
    mode: str,
    data: Any,
    metadata: dict[str, Any],
    idempotency_key: str | None,
    now: datetime,
) -> dict[str, Any]:
    """A new execution's row with every column set, of ``workflow`` (its stored record)."""
    return {
        "id": execution_id,
        "workflow_id": workflow.id,
        "workflow_name": workflow.name,
        "workflow_version": workflow.version,
        "owner_id": owner_id,
        "status": ExecutionStatus.INITIALIZED,
        "mode": mode,
        "input": data,
        "metadata": metadata,
        "output": None,
        "error": None,
        "idempotency_key": idempotency_key,
        "checkpoint": None,
        "barriers": None,
        "total_steps": 0,
        "resolved_steps": 0,
        "active_steps": 0,
        "waiting_steps": 0,
        "retries": 0,
        "revision": 0,
        "maps": None,
        "parent_execution_id": None,
        "parent_step": None,
        "parent_index": None,
        "depth": 0,
        "concurrency_key": None,
        "created_at": now,
        "started_at": None,
        "finished_at": None,
        "updated_at": now,
    }


def new_run(execution_id: str, now: datetime, step: StepDefinition, attempt: int) -> dict[str, Any]:
    """A new run with every column set (rows are written together, in one statement)."""
    return {
        "execution_id": execution_id,
        "step_name": step.name,
        "step_type": step.type.value,
        "agent": step.agent,
        "attempt": attempt,
        "status": S.PENDING,
        "superseded": False,
        "carried": False,
        "timeout": step.timeout,
        "error_type": None,
        "error_message": None,
        "error_code": None,
        "output": None,
        "duration_ms": None,
        "worker": None,
        "task_id": None,
        "completed_by": None,
        "input": None,
        "queued_at": now,
        "not_before": None,
        "published_at": None,
        "started_at": None,
        "heartbeat_at": None,
        "finished_at": None,
        "item_index": None,
        "item": None,
    }


def fire_at(step: StepDefinition, now: datetime, evaluate: Callable[[Expression], Any]) -> datetime:
    """When a timer step fires: after its ``delay``, or at the moment its ``until`` gives
    (``evaluate`` evaluates it over the execution's data)."""
    if step.delay is not None:
        return now + timedelta(seconds=step.delay)
    assert step.until is not None
    value = evaluate(compile_expression(step.until))
    try:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return datetime.fromtimestamp(value, UTC)
        if not isinstance(value, str):
            raise ExpressionError(f"gave {type(value).__name__}, not an ISO timestamp", step.until)
        moment = datetime.fromisoformat(value)
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except (ValueError, OverflowError, OSError):
        usable = "not a usable timestamp (ISO 8601, or seconds since 1970)"
        raise ExpressionError(f"{value!r} is {usable}", step.until) from None


def open_reason(step: StepDefinition, row: dict[str, Any], status: str) -> str | None:
    """What a new run's history says of it, in an execution in ``status``."""
    if step.type is StepType.HUMAN:
        who = ", ".join(step.assignees) or "any operator"
        return f"human task for {who}"
    if step.type is StepType.TIMER and row.get("not_before") is not None:
        return f"timer fires at {row['not_before'].isoformat()}"
    if step.type is StepType.WAIT:
        if row["status"] == S.SUCCEEDED:
            return f"took signal {step.waits_for!r} sent by {row.get('completed_by') or 'an operator'}"
        until = f" until {row['not_before'].isoformat()}" if row.get("not_before") is not None else ""
        return f"waiting for signal {step.waits_for!r}{until}"
    if row["status"] == S.PENDING:
        return "held: execution paused" if status == ExecutionStatus.PAUSED else "held: step mode"
    return None


def waiting_reason(runs: Sequence[StepRunRecord]) -> str:
    """Why an execution waits, from the runs it waits on."""
    parts = []
    for run in runs:
        if run.status == S.PENDING:
            parts.append(f"{run.step_name} (next step)")
        elif run.step_type == StepType.HUMAN:
            parts.append(f"{run.step_name} (human task)")
        elif run.step_type == StepType.WAIT and run.status == S.WAITING:
            parts.append(f"{run.step_name} (signal)")
        elif run.step_type != StepType.TIMER:
            parts.append(f"{run.step_name} ({run.error_type or 'error'}: fix or retry)")
    return "waiting for " + ", ".join(parts)


def took_signal(row: dict[str, Any], signal: SignalRecord, now: datetime) -> None:
    """A new run of a wait step takes a kept ``signal``: it succeeds at once with its data."""
    row.update(
        status=S.SUCCEEDED,
        output=signal.data,
        completed_by=signal.sent_by,
        started_at=now,
        finished_at=now,
        duration_ms=0,
    )
