"""PostgreSQL's transaction: the hot path's statements of :mod:`workflow_engine.store.postgres`
in place of the portable ones, notifications, advisory locks, and pipelining."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

from workflow_engine.core.states import StepStatus, check_step_update
from workflow_engine.store import postgres
from workflow_engine.store.records import ExecutionRecord
from workflow_engine.store.transaction import Tx

_NOTIFY = sa.text("SELECT pg_notify(:channel, :id)")
_LOCK = sa.text("SELECT pg_advisory_xact_lock(hashtext(:key))")
_TRY_LOCK = sa.text("SELECT pg_try_advisory_xact_lock(hashtext(:key))")


class PostgresTx(Tx):
    """A :class:`~workflow_engine.store.transaction.Tx` on PostgreSQL. A *pipelined* one leaves
    BEGIN to its first statement and COMMIT to its last (see ``Store.pipelined``)."""

    def __init__(
        self, connection: Connection, now: datetime, run_ids: postgres.RunIds, pipelined: bool = False
    ) -> None:
        super().__init__(connection, now)
        self.run_ids = run_ids
        self.pipelined = pipelined
        self.begun = not pipelined

    @staticmethod
    def _insert(table: sa.Table) -> Any:
        return postgresql.insert(table)

    def serialize(self, key: str) -> None:
        self.execute(_LOCK, {"key": key})

    def try_serialize(self, key: str) -> bool:
        return bool(self.execute(_TRY_LOCK, {"key": key}).scalar())

    def lock_and_finish_run(
        self, execution_id: str, run_id: int, worker: str, values: Mapping[str, Any]
    ) -> tuple[ExecutionRecord | None, bool]:
        """One statement (which opens a pipelined transaction)."""
        check_step_update((StepStatus.RUNNING,), values["status"])
        begin, self.begun = not self.begun, True
        return postgres.finish(self.connection, execution_id, run_id, worker, values, begin=begin)

    def write(
        self,
        execution_id: str,
        values: Mapping[str, Any],
        runs: Sequence[dict[str, Any]],
        events: Sequence[dict[str, Any]],
        last: bool = False,
    ) -> list[int]:
        """One statement, which also commits a pipelined transaction when it is its ``last``."""
        ids = self.run_ids.take(self.connection, len(runs)) if runs else []
        commit = last and self.pipelined and self.begun
        postgres.save(self.connection, execution_id, values, runs, events, ids, commit=commit)
        self.committed = commit
        return ids

    def notify(self, execution_id: str) -> None:
        self.execute(_NOTIFY, {"channel": postgres.CHANNEL, "id": execution_id})
