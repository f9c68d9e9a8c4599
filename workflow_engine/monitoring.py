"""Aggregates for operators: executions by status, step durations, errors by type, in a window."""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import datetime
from typing import Any

from workflow_engine.core.states import StepStatus
from workflow_engine.store import reports
from workflow_engine.store.records import ExecutionRecord, StepRunRecord
from workflow_engine.store.repository import Store

MAX_SAMPLES = 100_000


def _percentile(values: list[int], fraction: float) -> float:
    if len(values) == 1:
        return float(values[0])
    return float(statistics.quantiles(values, n=100, method="inclusive")[int(fraction * 100) - 1])


def summary(store: Store, since: datetime, owner_id: int | None = None) -> dict[str, Any]:
    """Counts by status, step durations per agent, and errors by type, since ``since``."""
    executions = reports.executions_by_status(store, since, owner_id)
    rows = reports.run_samples(store, since, owner_id, MAX_SAMPLES)
    durations: dict[str, list[int]] = defaultdict(list)
    statuses: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    for step_type, agent, status, duration, error_type in rows:
        statuses[status] += 1
        if error_type:
            errors[error_type] += 1
        if status == StepStatus.SUCCEEDED and duration is not None:
            durations[agent or step_type].append(duration)
    return {
        "since": since.isoformat(),
        "executions": {"total": sum(executions.values()), "by_status": executions},
        "steps": {"total": len(rows), "by_status": dict(statuses)},
        "step_durations_ms": {
            name: {
                "count": len(values),
                "mean": round(statistics.fmean(values), 1),
                "p50": _percentile(values, 0.5),
                "p95": _percentile(values, 0.95),
                "max": max(values),
            }
            for name, values in sorted(durations.items())
        },
        "errors_by_type": dict(errors),
    }


def open_tasks(
    store: Store,
    owner_id: int | None = None,
    limit: int = 500,
    assigned: Callable[[int, str], bool] | None = None,
) -> list[tuple[StepRunRecord, ExecutionRecord]]:
    """Steps waiting for a person: human tasks, and steps waiting for a fix, of ``owner_id``'s
    executions; and the human tasks of others' executions whose (workflow id, step)
    ``assigned`` says name the user among their assignees. Oldest first."""
    own = reports.waiting_for_people(store, owner_id, limit)
    if owner_id is None or assigned is None:
        return own
    steps = [place for place in reports.human_steps_waiting(store, owner_id) if assigned(*place)]
    if not steps:
        return own
    theirs = reports.waiting_for_people(store, None, limit, at=steps, besides_owner=owner_id)
    return sorted(own + theirs, key=lambda pair: pair[0].queued_at)[:limit]
