"""Optimistic writes: a step's outcome recorded in one round trip, guarded by the revision.

A worker that runs steps in place wrote the execution's row itself when it recorded the
previous step, so it knows that row, and its revision, before the next outcome. The decision
for that outcome is then made from the known row alone (a decision that needs more, such as an
output for a condition or the runs of a retry, is made again under the lock).
:meth:`OptimisticWrite.apply` records the outcome and writes the decision in one statement,
which does nothing unless the row is still at that revision and the run still running for the
worker.

A child execution is written the same way twice: its start, from what its parent's decision
knew (:meth:`OptimisticWrite.start`), and its end, told to its parent against the parent's row
as the worker that started the child last wrote it (:meth:`OptimisticWrite.apply` on the
parent's run). Any execution without a read to make first starts so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from workflow_engine.core.states import StepStatus, check_step_update
from workflow_engine.store import postgres


class OptimisticWrite:
    """A connection that records a step's outcome and the decision planned for it in one
    autocommitted statement (or starts a child execution), at ``now``."""

    def __init__(self, connection: Connection, now: datetime, run_ids: postgres.RunIds) -> None:
        self.connection = connection
        self.now = now
        self.run_ids = run_ids

    def execute(self, statement: Any, parameters: Any = None) -> sa.CursorResult[Any]:
        """A statement of its own (autocommitted), such as a read the plan needs."""
        return self.connection.execute(statement, parameters)

    def reserve(self, count: int) -> list[int]:
        """Ids for the new runs the plan writes."""
        return self.run_ids.take(self.connection, count) if count else []

    def apply(
        self,
        execution_id: str,
        revision: int,
        run_id: int,
        worker: str | None,
        attempt: Mapping[str, Any],
        written: tuple[Mapping[str, Any], Sequence[dict[str, Any]], Sequence[dict[str, Any]], Sequence[int]],
    ) -> bool:
        """Record ``attempt`` on the run and write the planned unit (the execution's row, new
        runs, events, the runs' ids), if the execution's row is at ``revision``: whether it was
        done (otherwise nothing was written). ``worker`` None: the run of a workflow step,
        which no worker runs (its child's end is its outcome)."""
        check_step_update((StepStatus.RUNNING,), attempt["status"])
        return postgres.finish_optimistic(
            self.connection, execution_id, revision, run_id, worker, attempt, written
        )

    def start(
        self,
        values: Mapping[str, Any],
        changes: Mapping[str, Any],
        written: tuple[Sequence[dict[str, Any]], Sequence[dict[str, Any]], Sequence[int]],
        waits: int | None = None,
    ) -> bool:
        """Start the new execution ``values`` as its first decision left it (its ``changes`` to
        the row, its new runs, events and the runs' ids), once; a child only if its parent
        still runs and the parent's run ``waits`` waits for it: whether it was started
        (otherwise nothing was written)."""
        runs, events, ids = written
        return postgres.start(self.connection, values, changes, runs, events, ids, waits)
