"""Step runs as a decision counts and dates them: the execution counter a run counts toward,
when a timer fires, why an execution waits, a signal a wait step takes. Plain data in, plain
data out: :class:`~workflow_engine.decisions.unit.Unit` applies them (and makes new runs)."""

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
