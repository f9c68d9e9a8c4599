"""PostgreSQL's transaction: the hot path's statements of :mod:`workflow_engine.store.postgres`
in place of the portable ones, notifications, advisory locks, and pipelining."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

from workflow_engine.clock import Clock
from workflow_engine.core.states import StepStatus, check_step_update
from workflow_engine.store import postgres, slots
from workflow_engine.store import schema as t
from workflow_engine.store.records import ExecutionRecord
from workflow_engine.store.transaction import Tx

_NOTIFY = sa.text("SELECT pg_notify(:channel, :id)")
_LOCK = sa.text("SELECT pg_advisory_xact_lock(hashtext(:key))")
# (store.slots.taken, after BEGIN and the lock, in one round trip)
_BEGIN_AND_HOLD_SLOTS = sa.text(
    f"""BEGIN; SELECT pg_advisory_xact_lock(hashtext(:lock));
    SELECT id, status FROM {t.executions.name}
    WHERE concurrency_key = :key AND status IN :statuses AND id <> :besides
    ORDER BY created_at, id LIMIT :limit"""  # noqa: S608 - a table name; every value is bound
).bindparams(sa.bindparam("statuses", value=[*slots.HOLDING, slots.QUEUED], expanding=True))
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

    def held_slots(self, key: str, limit: int, besides: str, clock: Clock) -> list[tuple[str, str]]:
        """One round trip when it opens a pipelined transaction: BEGIN, the lock, then the
        count, each its own statement (the count's snapshot is taken once the key is held)."""
        if self.begun:
            return super().held_slots(key, limit, besides, clock)
        self.begun = True
        parameters = {"lock": f"concurrency:{key}", "key": key, "besides": besides, "limit": limit}
        rows = self.connection.execute(_BEGIN_AND_HOLD_SLOTS, parameters).all()
        self.advance(clock)
        return [(str(row.id), str(row.status)) for row in rows]

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

    def start(
        self,
        values: dict[str, Any],
        changes: Mapping[str, Any],
        runs: Sequence[dict[str, Any]],
        events: Sequence[dict[str, Any]],
        last: bool = False,
    ) -> list[int] | None:
        """One statement (opening a pipelined transaction, or committing it when ``last``)."""
        ids = self.run_ids.take(self.connection, len(runs)) if runs else []
        begin, self.begun = not self.begun, True
        # (a start with an idempotency key may find it used: its result is read, COMMIT follows)
        commit = last and self.pipelined and values.get("idempotency_key") is None
        applied = postgres.start(
            self.connection, values, changes, runs, events, ids, begin=begin, commit=commit
        )
        self.committed = commit
        return ids if applied else None

    def notify(self, execution_id: str) -> None:
        self.execute(_NOTIFY, {"channel": postgres.CHANNEL, "id": execution_id})
