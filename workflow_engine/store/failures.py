"""Failed attempts, read for error groups: every step run that ended with an error since a
time, with its execution's workflow and status (the index of failed attempts by finish time)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from workflow_engine.store import schema as t
from workflow_engine.store.database import StatementRunner


@dataclass(frozen=True, slots=True)
class FailedAttempt:
    execution_id: str
    workflow: str
    step: str
    error_type: str
    error_code: str | None
    error_message: str | None
    finished_at: datetime
    execution_status: str


def failed_attempts(
    db: StatementRunner, since: datetime, owner_id: int | None, limit: int
) -> list[FailedAttempt]:
    r, e = t.step_runs, t.executions
    query = (
        sa.select(
            r.c.execution_id,
            e.c.workflow_name,
            r.c.step_name,
            r.c.error_type,
            r.c.error_code,
            r.c.error_message,
            r.c.finished_at,
            e.c.status,
        )
        .select_from(r.join(e, e.c.id == r.c.execution_id))
        .where(r.c.error_type.is_not(None), r.c.finished_at >= since)
        .order_by(r.c.finished_at.desc())
        .limit(limit)
    )
    if owner_id is not None:
        query = query.where(e.c.owner_id == owner_id)
    return [FailedAttempt(*tuple(row)) for row in db.execute(query)]
