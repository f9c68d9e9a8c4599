"""Claiming a step attempt for a worker: queued → running, with the context its agent needs.

Here, the portable claim (SQLite's). On PostgreSQL (``PostgresStore.claim``, with the statement
``CLAIM`` of :mod:`workflow_engine.store.postgres`) a claim is one statement, committed on its own without
waiting for the disk: if the server crashed and lost it, the attempt would look queued again
and be published again, and the commit of the attempt's outcome (which does wait for the disk)
makes it durable anyway.

Runs are found by primary key. Conditions on their status are written ``status || ''`` so the
planner never walks the status index instead: every run passes through each open status once,
and during a large fan-out that index holds thousands of entries for the same status.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from workflow_engine.core.states import (
    CLAIMABLE_STEP,
    TERMINAL_EXECUTION,
    StepStatus,
)
from workflow_engine.definitions.model import WORKER_STEPS
from workflow_engine.store.records import CLAIMED_ROW_FIELDS, ClaimedRun, input_of, item_details
from workflow_engine.store.transaction import Tx


def claim_portable(tx: Tx, run_id: int, worker: str, task_id: str | None) -> ClaimedRun | None:
    """The same claim as a few statements in a transaction (SQLite)."""
    row = tx.claim_row(run_id)
    if row is None or row.superseded or row.status not in CLAIMABLE_STEP:
        return None
    if row.execution_status in TERMINAL_EXECUTION or row.step_type not in WORKER_STEPS:
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
    fields = dict(zip(CLAIMED_ROW_FIELDS, map(row._mapping.__getitem__, CLAIMED_ROW_FIELDS), strict=True))
    if agent_input is not None:
        fields["execution_input"] = agent_input
    return ClaimedRun(started_at=started_at, **fields)
