"""Aggregates for operators: executions by status, step durations, errors by type, in a window."""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from workflow_engine.core.states import StepStatus
from workflow_engine.store import schema as t
from workflow_engine.store.records import ExecutionRecord, StepRunRecord, from_row
from workflow_engine.store.repository import Store

MAX_SAMPLES = 100_000


def _percentile(values: list[int], fraction: float) -> float:
    if len(values) == 1:
        return float(values[0])
    return float(statistics.quantiles(values, n=100, method="inclusive")[int(fraction * 100) - 1])


def summary(store: Store, since: datetime, owner_id: int | None = None) -> dict[str, Any]:
    """Counts by status, step durations per agent, and errors by type, since ``since``."""
    e, r = t.executions, t.step_runs
    mine = [e.c.created_at >= since] + ([e.c.owner_id == owner_id] if owner_id is not None else [])
    by_status = sa.select(e.c.status, sa.func.count()).where(*mine).group_by(e.c.status)
    runs = (
        sa.select(r.c.step_type, r.c.agent, r.c.status, r.c.duration_ms, r.c.error_type)
        .join(e, e.c.id == r.c.execution_id)
        .where(r.c.queued_at >= since, *([e.c.owner_id == owner_id] if owner_id is not None else []))
        .limit(MAX_SAMPLES)
    )
    with store.reading() as conn:
        executions = {status: count for status, count in conn.execute(by_status)}
        rows = conn.execute(runs).all()
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
    store: Store, owner_id: int | None = None, limit: int = 500
) -> list[tuple[StepRunRecord, ExecutionRecord]]:
    """Steps waiting for a person: human tasks, and steps waiting for a fix."""
    e, r = t.executions, t.step_runs
    query = (
        sa.select(r, *[c.label(f"e_{c.name}") for c in e.c])
        .join(e, e.c.id == r.c.execution_id)
        .where(r.c.status == StepStatus.WAITING, r.c.superseded.is_(False), r.c.step_type != "timer")
        .order_by(r.c.queued_at)
        .limit(limit)
    )
    if owner_id is not None:
        query = query.where(e.c.owner_id == owner_id)
    with store.reading() as conn:
        rows = conn.execute(query).all()
    found = []
    for row in rows:
        execution = ExecutionRecord(**{c.name: row._mapping[f"e_{c.name}"] for c in e.c})
        found.append((from_row(StepRunRecord, row), execution))
    return found
