"""PostgreSQL's store and transaction: the hot path's claims, pipelined and planned
transactions, barrier arrivals, notifications and advisory locks, in place of the portable ones
of :class:`~workflow_engine.store.repository.Store` and
:class:`~workflow_engine.store.transaction.Tx` (the statements are
:mod:`workflow_engine.store.postgres`'s)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection, Engine

from workflow_engine.clock import Clock
from workflow_engine.core.states import STEP_TRANSITIONS, StepStatus, check_step_update
from workflow_engine.store import postgres, slots
from workflow_engine.store import schema as t
from workflow_engine.store.arrivals import record_arrival, record_item_arrival
from workflow_engine.store.database import begin, create_engine, create_fast_engine, translate
from workflow_engine.store.optimistic import OptimisticWrite
from workflow_engine.store.records import CLAIMED_ROW_FIELDS, ClaimedRun, ExecutionRecord
from workflow_engine.store.repository import Store
from workflow_engine.store.seam import Arrival, ArrivalAnswer, Take, Unsupported
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


_ENDS_OF_RUNNING = STEP_TRANSITIONS[StepStatus.RUNNING]  # what a running run may become


class PostgresTx(Tx):
    """A :class:`~workflow_engine.store.transaction.Tx` on PostgreSQL. A *pipelined* one leaves
    BEGIN to its first statement and COMMIT to its last (see ``Store.pipelined``)."""

    def __init__(
        self, connection: Connection, now: datetime, run_ids: postgres.RunIds, pipelined: bool = False
    ) -> None:
        # (Tx's attributes, set here: this runs for every outcome)
        self.connection = connection
        self.now = now
        self.committed = False
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
        """Lock the execution and record an attempt's outcome on its running run, in one
        statement (which opens a pipelined transaction)."""
        if values["status"] not in _ENDS_OF_RUNNING:  # (a call only to say why not)
            check_step_update((StepStatus.RUNNING,), values["status"])
        begin, self.begun = not self.begun, True
        parameters = postgres.record_parameters(execution_id, run_id, worker, values)
        row = postgres.FINISH.execute(self.connection, parameters, begin=begin).first()
        if row is None:
            return None, False
        # (from_row's work, here: this runs for every outcome)
        return ExecutionRecord(*map(row._mapping.__getitem__, postgres.EXECUTION_FIELDS)), bool(row.applied)

    def write(
        self,
        execution_id: str,
        values: Mapping[str, Any],
        runs: Sequence[dict[str, Any]],
        events: Sequence[dict[str, Any]],
        last: bool = False,
    ) -> list[int]:
        """A unit of work in one statement (the new runs given their ids), which also commits a
        pipelined transaction when it is its ``last``."""
        ids = self.run_ids.take(self.connection, len(runs)) if runs else []
        commit = last and self.pipelined and self.begun
        parameters = postgres.write_parameters(execution_id, values, runs, events, ids)
        postgres.SAVE.execute(self.connection, parameters, commit=commit)
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


class PostgresStore(Store):
    notifies = True  # NOTIFY on commit (see PostgresTx.notify), LISTEN in workflow_engine.notify

    def __init__(self, engine: Engine, clock: Clock | None = None) -> None:
        super().__init__(engine, clock)
        self.run_ids = postgres.RunIds()
        self._fast_engine: Engine | None = None
        self._pipeline_engine: Engine | None = None

    def dispose(self) -> None:
        super().dispose()
        for extra in (self._fast_engine, self._pipeline_engine):
            if extra is not None:
                extra.dispose()

    def waiting_for_slot(self, key: str) -> bool:
        """One autocommitted statement (this is asked each time a keyed execution ends)."""
        if self._fast_engine is None:
            self._fast_engine = create_fast_engine(self.engine.url)
        try:
            with self._fast_engine.connect() as conn:
                return slots.any_queued(conn, key)
        except (exc.DBAPIError, exc.TimeoutError) as error:
            raise translate(error) from error

    def claim(
        self, run_id: int, worker: str, task_id: str | None = None, at: datetime | None = None
    ) -> ClaimedRun | None:
        """One statement on sessions that do not wait for the disk (losing a claim only
        republishes the attempt)."""
        if self._fast_engine is None:
            self._fast_engine = create_fast_engine(self.engine.url)
        now = at or self.clock.now()
        parameters = {**postgres.CLAIM_STATES, "now": now}
        parameters.update(run_id=run_id, worker=worker, task_id=task_id)
        try:
            with self._fast_engine.connect() as connection:
                row = postgres.CLAIM.execute(connection, parameters).first()
        except (exc.DBAPIError, exc.TimeoutError) as error:
            raise translate(error) from error
        if row is None:
            return None
        # (claims._claimed's work, here: this runs for every attempt)
        fields = map(row._mapping.__getitem__, CLAIMED_ROW_FIELDS)
        return ClaimedRun(started_at=now, **dict(zip(CLAIMED_ROW_FIELDS, fields, strict=True)))

    @contextmanager
    def transaction(self, now: datetime | None = None) -> Iterator[Tx]:
        with begin(self.engine) as connection:
            yield PostgresTx(connection, now or self.clock.now(), self.run_ids)

    @contextmanager
    def pipelined(self, now: datetime | None = None) -> Iterator[Tx]:
        """A write transaction whose BEGIN and COMMIT ride with its first and last statements
        (two round trips fewer), dated ``now`` (the clock's, if not given)."""
        try:
            with (self._pipeline_engine or self._autocommitting()).connect() as connection:
                tx = PostgresTx(connection, now or self.clock.now(), self.run_ids, pipelined=True)
                try:
                    yield tx
                    if tx.begun and not tx.committed:
                        connection.exec_driver_sql("COMMIT")
                except BaseException:
                    if tx.begun and not tx.committed and not connection.invalidated:
                        try:
                            connection.exec_driver_sql("ROLLBACK")
                        except exc.SQLAlchemyError:
                            connection.invalidate()  # never back to the pool mid-transaction
                    raise
        except (exc.DBAPIError, exc.TimeoutError) as error:
            raise translate(error) from error

    @contextmanager
    def optimistic(self) -> Iterator[OptimisticWrite | Unsupported]:
        try:
            with self._autocommitting().connect() as connection:
                yield OptimisticWrite(connection, self.clock.now(), self.run_ids)
        except (exc.DBAPIError, exc.TimeoutError) as error:
            raise translate(error) from error

    def record_arrival(self, arrival: Arrival, take: Take) -> ArrivalAnswer:
        """Record a success that only counts toward joins in one statement, if
        ``core.arrivals``'s guard holds on the execution's row, and take a carried run as
        ``take`` says. See :data:`workflow_engine.store.arrivals.RECORD_ARRIVAL`."""
        check_step_update((StepStatus.RUNNING,), arrival.attempt["status"])
        try:
            with self._autocommitting().connect() as connection:
                return record_arrival(connection, arrival, take)
        except (exc.DBAPIError, exc.TimeoutError) as error:
            raise translate(error) from error

    def record_item_arrival(self, arrival: Arrival, step: str, take: Take) -> ArrivalAnswer:
        """Record a map item's success in one statement if ``core.mapping``'s guard holds on
        the execution's row. See :data:`workflow_engine.store.arrivals.RECORD_ITEM_ARRIVAL`."""
        check_step_update((StepStatus.RUNNING,), arrival.attempt["status"])
        try:
            with self._autocommitting().connect() as connection:
                return record_item_arrival(connection, arrival, step, take)
        except (exc.DBAPIError, exc.TimeoutError) as error:
            raise translate(error) from error

    def _autocommitting(self) -> Engine:
        """Sessions that leave transaction control to the statements (durable commits)."""
        if self._pipeline_engine is None:
            self._pipeline_engine = create_engine(
                self.engine.url.render_as_string(hide_password=False),
                pool_size=2,
                isolation_level="AUTOCOMMIT",
            )
        return self._pipeline_engine
