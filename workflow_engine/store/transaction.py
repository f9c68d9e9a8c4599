"""Writes inside one transaction: the coordinator's unit of work.

Every status change of a step run is a guarded UPDATE (``WHERE status IN (...)``) so that a
late or duplicate message can never overwrite what another process decided; the caller learns
from the returned rows whether its change applied.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Connection

from workflow_engine.clock import Clock
from workflow_engine.core.states import StepStatus, check_step_update
from workflow_engine.definitions.model import StepType
from workflow_engine.errors import StoreError
from workflow_engine.store import schema as t
from workflow_engine.store import slots
from workflow_engine.store.records import (
    ExecutionRecord,
    SignalRecord,
    StepRunRecord,
    from_row,
    input_of,
    run_in_place_values,
)

# run row joined with what a worker needs from its execution, read when claiming
_CLAIM_COLUMNS = (
    t.step_runs.c.id,
    t.step_runs.c.execution_id,
    t.step_runs.c.step_name,
    t.step_runs.c.step_type,
    t.step_runs.c.agent,
    t.step_runs.c.attempt,
    t.step_runs.c.status,
    t.step_runs.c.superseded,
    t.step_runs.c.queued_at,
    t.step_runs.c.not_before,
    t.step_runs.c.timeout,
    t.step_runs.c.input.label("run_input"),
    t.step_runs.c.item_index,
    t.step_runs.c.item,
    t.executions.c.status.label("execution_status"),
    t.executions.c.workflow_id,
    t.executions.c.workflow_name,
    t.executions.c.workflow_version,
    t.executions.c.input.label("execution_input"),
    t.executions.c.metadata.label("execution_metadata"),
    t.executions.c.retries,
)


def latest_checkpoint(
    connection: Connection, execution_id: str, step_name: str, index: int | None = None
) -> Any:
    """What the latest attempt of a step (of its item ``index``) that saved a checkpoint saved."""
    r = t.step_runs
    item = r.c.item_index.is_(None) if index is None else r.c.item_index == index
    query = (
        sa.select(r.c.checkpoint)
        .where(
            r.c.execution_id == execution_id, r.c.step_name == step_name, item, r.c.checkpoint.is_not(None)
        )
        .order_by(r.c.attempt.desc())
        .limit(1)
    )
    return connection.execute(query).scalar()


def _items_of(execution_id: str, step: str) -> list[sa.ColumnElement[bool]]:
    """The live runs of the items of a map step."""
    r = t.step_runs
    return [
        r.c.execution_id == execution_id,
        r.c.step_name == step,
        r.c.item_index.is_not(None),
        r.c.superseded.is_(False),
    ]


class Tx:
    """One open transaction and the time it started at (every row it writes uses that time):
    the portable implementation, SQLite's; :class:`~workflow_engine.store.postgres_store.PostgresTx`
    is PostgreSQL's.

    A *pipelined* transaction (PostgreSQL, see ``Store.pipelined``) runs on a connection that
    leaves transaction control to us, so that BEGIN travels with the first statement and COMMIT
    with the last: ``begun`` and ``committed`` say how far it got.
    """

    pipelined = False

    def __init__(self, connection: Connection, now: datetime) -> None:
        self.connection = connection
        self.now = now
        self.begun = True
        self.committed = False

    def insert_ignoring_conflicts(
        self, table: sa.Table, values: Mapping[str, Any], conflict_columns: Sequence[str]
    ) -> bool:
        """INSERT unless a row with the same ``conflict_columns`` exists; True when inserted."""
        statement = self._insert(table).values(dict(values))
        statement = statement.on_conflict_do_nothing(index_elements=list(conflict_columns))
        # a returned row, not the rowcount: SQLAlchemy's psycopg 3 dialect reports no rowcount here
        inserted = self.execute(statement.returning(table.c[conflict_columns[0]])).first()
        return inserted is not None

    @staticmethod
    def _insert(table: sa.Table) -> Any:
        return sqlite.insert(table)

    def serialize(self, key: str) -> None:
        """Hold ``key`` until the transaction ends: transactions that hold the same key run one
        after the other (SQLite runs every write transaction so: nothing to do)."""

    def hold(self, key: str, clock: Clock) -> None:
        """:meth:`serialize`, then move the transaction's time on to when the key is held: what
        it writes from then on happened after whatever held the key before."""
        self.serialize(key)
        self.advance(clock)

    def held_slots(self, key: str, limit: int, besides: str, clock: Clock) -> list[tuple[str, str]]:
        """Hold the concurrency ``key`` (see :meth:`hold`), then up to ``limit`` executions that
        hold or wait for its slots, but for ``besides``, oldest first: (id, status) each."""
        self.hold(f"concurrency:{key}", clock)
        return slots.taken(self, key, limit, besides)

    def advance(self, clock: Clock) -> None:
        """Move the transaction's time on to now: what it writes next is later than anything it
        has read as committed (a row's time is taken before its transaction commits)."""
        self.now = max(self.now, clock.now())

    def try_serialize(self, key: str) -> bool:
        """Hold ``key`` until the transaction ends if no other transaction holds it; whether it
        is held (SQLite: always, as its writers run one at a time)."""
        return True

    def execute(self, statement: Any, parameters: Any = None) -> sa.CursorResult[Any]:
        if not self.begun:
            self.connection.exec_driver_sql("BEGIN")
            self.begun = True
        return self.connection.execute(statement, parameters)

    # executions

    def insert_execution(self, values: dict[str, Any]) -> bool:
        """Insert unless the owner already used this idempotency key."""
        if values.get("idempotency_key") is None:
            self.execute(sa.insert(t.executions).values(values))
            return True
        return self.insert_ignoring_conflicts(t.executions, values, ["owner_id", "idempotency_key"])

    def execution_by_key(self, owner_id: int, key: str) -> ExecutionRecord | None:
        e = t.executions
        row = self.execute(sa.select(e).where(e.c.owner_id == owner_id, e.c.idempotency_key == key)).first()
        return None if row is None else from_row(ExecutionRecord, row)

    def execution(self, execution_id: str) -> ExecutionRecord | None:
        row = self.execute(sa.select(t.executions).where(t.executions.c.id == execution_id)).first()
        return None if row is None else from_row(ExecutionRecord, row)

    def lock_execution(self, execution_id: str, owner_id: int | None = None) -> ExecutionRecord | None:
        """The execution, locked until the transaction ends (SQLite: the write lock is held)."""
        e = t.executions
        # NO KEY UPDATE: units exclude each other, while inserting events and runs (whose foreign
        # keys share-lock this row) never waits for a unit
        query = sa.select(e).where(e.c.id == execution_id).with_for_update(key_share=True)
        if owner_id is not None:
            query = query.where(e.c.owner_id == owner_id)
        row = self.execute(query).first()
        return None if row is None else from_row(ExecutionRecord, row)

    def update_execution(self, execution_id: str, values: Mapping[str, Any]) -> None:
        """Write the execution's row (its revision moves on: see migration 0003)."""
        self.execute(sa.update(t.executions).where(t.executions.c.id == execution_id).values(dict(values)))

    def lock_and_finish_run(
        self, execution_id: str, run_id: int, worker: str, values: Mapping[str, Any]
    ) -> tuple[ExecutionRecord | None, bool]:
        """Lock the execution, then record an attempt's outcome if the run is still running for
        ``worker``: the execution, and whether the outcome was recorded."""
        record = self.lock_execution(execution_id)
        if record is None:
            return None, False
        return record, self.update_run(run_id, values, (StepStatus.RUNNING,), worker)

    def write(
        self,
        execution_id: str,
        values: Mapping[str, Any],
        runs: Sequence[dict[str, Any]],
        events: Sequence[dict[str, Any]],
        last: bool = False,
    ) -> list[int]:
        """Save a unit of work: new runs, the execution's row, events, and the notification that
        there are new events (sent on commit). The new runs' ids."""
        ids = self.insert_runs(runs)
        self.update_execution(execution_id, values)
        self.insert_events(events)
        return ids

    def start(
        self,
        values: dict[str, Any],
        changes: Mapping[str, Any],
        runs: Sequence[dict[str, Any]],
        events: Sequence[dict[str, Any]],
        last: bool = False,
    ) -> list[int] | None:
        """Insert the new execution ``values`` as its first decision leaves it (``changes`` to
        its row, new runs, events): the runs' ids, or None when its idempotency key (or id) was
        used already and nothing was written."""
        if not self.insert_execution(values):
            return None
        return self.write(values["id"], changes, runs, events, last=last)

    def notify(self, execution_id: str) -> None:
        """Announce new events of ``execution_id`` to listeners, on commit (SQLite has none:
        readers poll)."""

    # step runs

    def insert_runs(self, rows: Sequence[dict[str, Any]]) -> list[int]:
        """Insert step runs; their ids, in the order given."""
        if not rows:
            return []
        if len(rows) == 1:
            key = self.execute(sa.insert(t.step_runs).values(rows[0])).inserted_primary_key
            assert key is not None
            return [int(key[0])]
        statement = sa.insert(t.step_runs).returning(t.step_runs.c.id, sort_by_parameter_order=True)
        return [row.id for row in self.execute(statement, list(rows))]

    def claim_row(self, run_id: int) -> sa.Row[Any] | None:
        """A run with its execution's context, the run row locked."""
        r, e = t.step_runs, t.executions
        query = sa.select(*_CLAIM_COLUMNS).join(e, e.c.id == r.c.execution_id).where(r.c.id == run_id)
        return self.execute(query.with_for_update(of=r)).first()

    def update_run(
        self, run_id: int, values: Mapping[str, Any], expect: Collection[str], worker: str | None = None
    ) -> bool:
        """Apply ``values`` if the run is still in one of the ``expect`` states (and ``worker``'s)."""
        return self.update_runs_by_id([run_id], values, expect, worker)

    def live_runs(self, execution_id: str) -> list[StepRunRecord]:
        """Every run of an execution not superseded, oldest first, locked until the transaction
        ends (a decision changes them as it read them)."""
        r = t.step_runs
        query = (
            sa.select(r)
            .where(r.c.execution_id == execution_id, r.c.superseded.is_(False))
            .order_by(r.c.id)  # locked in the order every other writer of runs locks them
            .with_for_update()  # SQLite: the write lock is held already
        )
        runs = [from_row(StepRunRecord, row) for row in self.execute(query)]
        return sorted(runs, key=lambda run: (run.queued_at, run.id))

    def update_runs_by_id(
        self,
        run_ids: Collection[int],
        values: Mapping[str, Any],
        expect: Collection[str],
        worker: str | None = None,
    ) -> bool:
        """Apply ``values`` to the runs, each of which must be in one of the ``expect`` states
        (and ``worker``'s): whether every one of them was."""
        if "status" in values:
            check_step_update(expect, values["status"])
        r = t.step_runs
        conditions: list[sa.ColumnElement[bool]] = [
            r.c.id.in_(list(run_ids)),
            r.c.status.in_(list(expect)),
            r.c.superseded.is_(False),
        ]
        if worker is not None:
            conditions.append(r.c.worker == worker)
        result = self.execute(sa.update(r).where(*conditions).values(dict(values)))
        return bool(result.rowcount == len(run_ids))

    def update_own_run(
        self, execution_id: str, step: str, values: Mapping[str, Any], expect: Collection[str]
    ) -> bool:
        """Apply ``values`` to the current own run of ``step`` (not an item's), which must be in
        one of ``expect``: whether it was."""
        if "status" in values:
            check_step_update(expect, values["status"])
        r = t.step_runs
        statement = (
            sa.update(r)
            .where(
                r.c.execution_id == execution_id,
                r.c.step_name == step,
                r.c.item_index.is_(None),
                r.c.superseded.is_(False),
                r.c.status.in_(list(expect)),
            )
            .values(dict(values))
        )
        return bool(self.execute(statement).rowcount == 1)

    def item_runs(self, execution_id: str, step: str, index: int) -> list[StepRunRecord]:
        """The live runs of one item of a map step, locked, oldest first."""
        r = t.step_runs
        query = sa.select(r).where(*_items_of(execution_id, step), r.c.item_index == index)
        query = query.order_by(r.c.id).with_for_update()
        return [from_row(StepRunRecord, row) for row in self.execute(query)]

    def pending_items(self, execution_id: str, step: str, count: int) -> list[StepRunRecord]:
        """Up to ``count`` pending items of a map step, lowest index first, locked."""
        r = t.step_runs
        query = (
            sa.select(r)
            .where(*_items_of(execution_id, step), r.c.status == StepStatus.PENDING)
            .order_by(r.c.item_index)
            .limit(count)
            .with_for_update()
        )
        return [from_row(StepRunRecord, row) for row in self.execute(query)]

    def item_outputs(self, execution_id: str, step: str) -> dict[int, Any]:
        """The outputs of a map step's items that succeeded, by index."""
        r = t.step_runs
        query = sa.select(r.c.item_index, r.c.output).where(
            *_items_of(execution_id, step), r.c.status == StepStatus.SUCCEEDED
        )
        return {row.item_index: row.output for row in self.execute(query)}

    def workflow_run(self, execution_id: str, step: str, index: int | None) -> StepRunRecord | None:
        """The live run of a workflow step (or of a workflow map's item ``index``) that waits for
        its child, if there is one."""
        r = t.step_runs
        item = r.c.item_index.is_(None) if index is None else r.c.item_index == index
        query = sa.select(r).where(
            r.c.execution_id == execution_id,
            r.c.step_name == step,
            item,
            r.c.step_type == StepType.WORKFLOW,
            r.c.status == StepStatus.RUNNING,
            r.c.superseded.is_(False),
        )
        row = self.execute(query.order_by(r.c.attempt.desc()).limit(1)).first()
        return None if row is None else from_row(StepRunRecord, row)

    def latest_child(
        self, parent_id: str, step: str, index: int | None
    ) -> tuple[ExecutionRecord | None, int]:
        """The latest child execution started for ``step`` (its item ``index``) of ``parent_id``,
        and how many were started."""
        e = t.executions
        item = e.c.parent_index.is_(None) if index is None else e.c.parent_index == index
        query = (
            sa.select(e)
            .where(e.c.parent_execution_id == parent_id, e.c.parent_step == step, item)
            .order_by(e.c.created_at, e.c.id)
        )
        children = [from_row(ExecutionRecord, row) for row in self.execute(query)]
        return (children[-1] if children else None), len(children)

    def insert_child(self, values: dict[str, Any]) -> bool:
        """Insert a child execution unless one with its id exists (it is started once)."""
        return self.insert_ignoring_conflicts(t.executions, values, ["id"])

    def take_carried(
        self, execution_id: str, worker: str | None, task_id: str | None, execution_input: Any
    ) -> tuple[int, dict[str, Any]] | None:
        """Take the oldest carried run of an execution (one another taker has not locked): as
        running for ``worker``, or, without one, as published. Its id and row, or None."""
        r = t.step_runs
        query = (
            sa.select(r.c.id, r.c.step_name, r.c.attempt, r.c.queued_at, r.c.input, r.c.item_index, r.c.item)
            .where(r.c.execution_id == execution_id, r.c.carried, r.c.status == StepStatus.QUEUED)
            .order_by(r.c.id)
            .limit(1)
            .with_for_update(skip_locked=True)
        )
        found = self.execute(query).first()
        if found is None:
            return None
        values: dict[str, Any] = {"carried": False}
        if worker is None:
            values["published_at"] = self.now
        else:
            check_step_update((StepStatus.QUEUED,), StepStatus.RUNNING)
            values.update(run_in_place_values(worker, task_id, self.now))
        self.execute(sa.update(r).where(r.c.id == found.id).values(values))
        row = {
            "step_name": found.step_name,
            "attempt": found.attempt,
            "queued_at": found.queued_at,
            "input": input_of(found.input, execution_input),
            "item_index": found.item_index,
            "item": found.item,
        }
        return found.id, {**row, "worker": worker, "started_at": self.now}

    def unpublish(self, run_ids: Sequence[int]) -> None:
        """Their messages never reached the broker: the reconciler publishes them again."""
        self.execute(sa.update(t.step_runs).where(t.step_runs.c.id.in_(run_ids)).values(published_at=None))

    def save_checkpoint(self, run_id: int, data: Any) -> None:
        self.execute(sa.update(t.step_runs).where(t.step_runs.c.id == run_id).values(checkpoint=data))

    def still_running(self, run_id: int) -> bool:
        """Whether the attempt is running and current (not cancelled, timed out or reset)."""
        r = t.step_runs
        row = self.execute(sa.select(r.c.status, r.c.superseded).where(r.c.id == run_id)).first()
        return row is not None and not row.superseded and row.status == StepStatus.RUNNING

    def run(self, run_id: int) -> StepRunRecord | None:
        row = self.execute(sa.select(t.step_runs).where(t.step_runs.c.id == run_id)).first()
        return None if row is None else from_row(StepRunRecord, row)

    def outputs(self, execution_id: str, names: Iterable[str] | None) -> dict[str, Any]:
        """Outputs of the given steps (all when None) whose current run succeeded."""
        r = t.step_runs
        query = sa.select(r.c.step_name, r.c.output).where(
            r.c.execution_id == execution_id,
            r.c.superseded.is_(False),
            r.c.status == StepStatus.SUCCEEDED,
            r.c.item_index.is_(None),
        )
        if names is not None:
            wanted = list(names)
            if not wanted:
                return {}
            query = query.where(r.c.step_name.in_(wanted))
        return {row.step_name: row.output for row in self.execute(query)}

    def latest_attempts(self, execution_id: str) -> dict[str, int]:
        """The latest attempt number of each step of an execution that ran (reset ones too)."""
        r = t.step_runs
        latest = sa.func.max(r.c.attempt).label("latest")
        query = (
            sa.select(r.c.step_name, latest).where(r.c.execution_id == execution_id).group_by(r.c.step_name)
        )
        return {row.step_name: int(row.latest) for row in self.execute(query)}

    def supersede(self, execution_id: str, names: Collection[str], keep: Collection[str] = ()) -> None:
        """The runs of the steps ``names`` are history; of the map steps in ``keep``, the items
        that succeeded are not."""
        r = t.step_runs
        statement = sa.update(r).where(r.c.execution_id == execution_id, r.c.step_name.in_(list(names)))
        if keep:
            kept = sa.and_(
                r.c.step_name.in_(list(keep)), r.c.item_index.is_not(None), r.c.status == StepStatus.SUCCEEDED
            )
            statement = statement.where(sa.not_(kept))
        self.execute(statement.values(superseded=True))

    # signals

    def kept_signals(self, execution_id: str, name: str) -> list[SignalRecord]:
        """The signals ``name`` sent to the execution that no wait step took yet, oldest first."""
        g = t.signals
        query = (
            sa.select(g)
            .where(g.c.execution_id == execution_id, g.c.name == name, g.c.consumed_at.is_(None))
            .order_by(g.c.id)
        )
        return [from_row(SignalRecord, row) for row in self.execute(query)]

    def insert_signals(self, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            self.execute(sa.insert(t.signals), list(rows))

    def consume_signals(self, taken: Sequence[tuple[int, str, int]]) -> None:
        """Each kept signal (id) is taken by a wait step's attempt."""
        g = t.signals
        for signal_id, step, attempt in taken:
            statement = sa.update(g).where(g.c.id == signal_id, g.c.consumed_at.is_(None))
            values = {"consumed_step": step, "consumed_attempt": attempt, "consumed_at": self.now}
            if self.execute(statement.values(values)).rowcount != 1:
                raise StoreError(f"signal {signal_id} was taken under the execution's lock")

    def signals(self, execution_id: str) -> list[SignalRecord]:
        """Every signal sent to the execution, oldest first."""
        g = t.signals
        query = sa.select(g).where(g.c.execution_id == execution_id).order_by(g.c.id)
        return [from_row(SignalRecord, row) for row in self.execute(query)]

    # events

    def insert_events(self, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            self.execute(sa.insert(t.events), list(rows))
