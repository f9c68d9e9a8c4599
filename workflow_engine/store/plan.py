"""A step's outcome recorded in one round trip, when its consequences are known in advance.

A worker that runs steps in place wrote the execution's row itself when it recorded the
previous step, so it knows that row, and its revision, before the next outcome. The unit for
that outcome is then planned against the known row on a :class:`Plan` instead of a locked
transaction: the plan keeps what the unit writes and refuses every read (a unit that needs to
read — an output for a condition, the runs of a retry — is planned again under the lock).
:meth:`Plan.apply` records the outcome and writes the unit in one statement, which does
nothing unless the row is still at that revision and the run still running for the worker.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection

from workflow_engine.core.states import StepStatus, check_step_update
from workflow_engine.store import postgres


class NeedsLock(Exception):
    """The unit being planned reads the database: it must be decided under the lock."""


class Plan:
    """Stands in for a transaction (``now`` and ``write``) while a unit is planned."""

    def __init__(self, connection: Connection, now: datetime, run_ids: postgres.RunIds) -> None:
        self.connection = connection
        self.now = now
        self.run_ids = run_ids
        self.written: tuple[Mapping[str, Any], list[dict[str, Any]], list[dict[str, Any]], list[int]] | None
        self.written = None

    def write(
        self,
        execution_id: str,
        values: Mapping[str, Any],
        runs: Sequence[dict[str, Any]],
        events: Sequence[dict[str, Any]],
        last: bool = False,
    ) -> list[int]:
        """Keep the unit's writes for :meth:`apply`; the new runs' ids are reserved now."""
        ids = self.run_ids.take(self.connection, len(runs)) if runs else []
        self.written = (values, list(runs), list(events), ids)
        return ids

    def __getattr__(self, name: str) -> Any:
        raise NeedsLock(name)

    def apply(
        self, execution_id: str, revision: int, run_id: int, worker: str, attempt: Mapping[str, Any]
    ) -> bool:
        """Record ``attempt`` on the run and write the planned unit, if the execution's row is
        at ``revision``: whether it was done (otherwise nothing was written)."""
        if self.written is None:
            return False
        check_step_update((StepStatus.RUNNING,), attempt["status"])
        return postgres.finish_planned(
            self.connection, execution_id, revision, run_id, worker, attempt, self.written
        )
