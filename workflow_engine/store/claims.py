"""Claiming a step attempt for a worker: queued → running, with the context its agent needs.

On PostgreSQL a claim is one statement, committed on its own without waiting for the disk: if
the server crashed and lost it, the attempt would look queued again and be published again,
and the commit of the attempt's outcome (which does wait for the disk) makes it durable anyway.

Runs are found by primary key. Conditions on their status are written ``status || ''`` so the
planner never walks the status index instead: every run passes through each open status once,
and during a large fan-out that index holds thousands of entries for the same status.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from workflow_engine.core.states import (
    CLAIMABLE_STEP,
    TERMINAL_EXECUTION,
    StepStatus,
    check_step_update,
    sql_literal,
)
from workflow_engine.definitions.model import StepType
from workflow_engine.store import schema as t
from workflow_engine.store.postgres import CHANNEL as EVENTS_CHANNEL
from workflow_engine.store.postgres import Prepared
from workflow_engine.store.records import input_of, item_details
from workflow_engine.store.transaction import Tx


@dataclass(frozen=True, slots=True)
class ClaimedRun:
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


_ROW_FIELDS = tuple(name for name in ClaimedRun.__slots__ if name != "started_at")

_CLAIM = Prepared(
    "wfe_claim",
    f"""
    WITH claimed AS (
        UPDATE {t.step_runs.name} AS r
        SET status = :running, started_at = :now, heartbeat_at = :now, worker = :worker, task_id = :task_id,
            carried = false,
            deadline_at = CASE WHEN r.timeout IS NULL THEN NULL
                               ELSE CAST(:now AS timestamptz) + r.timeout * interval '1 second' END
        FROM {t.step_runs.name} AS previous, {t.executions.name} AS e
        WHERE r.id = :run_id AND previous.id = r.id AND e.id = r.execution_id
          AND r.status || '' = ANY(:claimable) AND NOT r.superseded
          AND r.step_type = {sql_literal(StepType.AGENT)}
          AND e.status <> ALL(:terminal)
        RETURNING r.id, r.execution_id, r.step_name, r.attempt, r.queued_at, r.not_before,
                  previous.status AS previous_status, e.workflow_id, e.workflow_name,
                  e.workflow_version, e.metadata AS execution_metadata, e.retries, r.item_index, r.item,
                  COALESCE(r.input, e.input) AS execution_input
    ), recorded AS (
        INSERT INTO {t.events.name}
            (execution_id, step_name, attempt, from_status, to_status, actor, details, created_at)
        SELECT execution_id, step_name, attempt, previous_status, :running, :worker,
               CASE WHEN item_index IS NULL THEN NULL ELSE jsonb_build_object('index', item_index) END,
               :now
        FROM claimed
    )
    SELECT claimed.*, pg_notify('{EVENTS_CHANNEL}', claimed.execution_id) AS notified FROM claimed
    """,  # noqa: S608 - table names only; every value is a bound parameter
    {
        "running": "varchar",
        "now": "timestamptz",
        "worker": "varchar",
        "task_id": "varchar",
        "run_id": "bigint",
        "claimable": "text[]",
        "terminal": "text[]",
    },
    column_types={"queued_at": t.UTCDateTime(), "not_before": t.UTCDateTime()},
)


check_step_update(CLAIMABLE_STEP, StepStatus.RUNNING)  # the transition _CLAIM writes


def claim_postgres(
    engine: Engine, run_id: int, worker: str, task_id: str | None, now: datetime
) -> ClaimedRun | None:
    """One autocommitted statement on ``engine`` (whose sessions do not wait for the disk)."""
    parameters = {
        "run_id": run_id,
        "worker": worker,
        "task_id": task_id,
        "now": now,
        "running": StepStatus.RUNNING.value,
        "claimable": sorted(CLAIMABLE_STEP),
        "terminal": sorted(TERMINAL_EXECUTION),
    }
    with engine.connect() as connection:
        row = _CLAIM.execute(connection, parameters).first()
    if row is None:
        return None
    return _claimed(row, now)


def claim_portable(tx: Tx, run_id: int, worker: str, task_id: str | None) -> ClaimedRun | None:
    """The same claim as a few statements in a transaction (SQLite)."""
    row = tx.claim_row(run_id)
    if row is None or row.superseded or row.status not in CLAIMABLE_STEP:
        return None
    if row.execution_status in TERMINAL_EXECUTION or row.step_type != "agent":
        return None
    timeout = row.timeout
    values: dict[str, Any] = {
        "status": StepStatus.RUNNING,
        "started_at": tx.now,
        "heartbeat_at": tx.now,
        "worker": worker,
        "task_id": task_id,
        "deadline_at": tx.now + timedelta(seconds=timeout) if timeout else None,
        "carried": False,  # a carried run published by the reconciler, claimed by its message
    }
    if not tx.update_run(run_id, values, expect=(row.status,)):
        return None
    tx.insert_events(
        [
            {
                "execution_id": row.execution_id,
                "step_name": row.step_name,
                "attempt": row.attempt,
                "from_status": row.status,
                "to_status": StepStatus.RUNNING,
                "actor": worker,
                "reason": None,
                "details": item_details(row.item_index),
                "created_at": tx.now,
            }
        ]
    )
    tx.notify(row.execution_id)
    return _claimed(row, tx.now, input_of(row.run_input, row.execution_input))


def _claimed(row: sa.Row[Any], started_at: datetime, agent_input: Any = None) -> ClaimedRun:
    fields = dict(zip(_ROW_FIELDS, map(row._mapping.__getitem__, _ROW_FIELDS), strict=True))
    if agent_input is not None:
        fields["execution_input"] = agent_input
    return ClaimedRun(started_at=started_at, **fields)
