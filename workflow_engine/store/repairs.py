"""What the reconciler looks for, and the right to publish a run again.

The reconciler (:mod:`workflow_engine.coordinator.reconciler`) decides which repairs a pass
makes and with which thresholds; these are the queries that find the runs and executions each
repair is for, at most :data:`BATCH` at a time, oldest first.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from workflow_engine.core.states import TERMINAL_EXECUTION, ExecutionStatus, StepStatus
from workflow_engine.definitions.model import StepType
from workflow_engine.store import schema as t
from workflow_engine.store.records import StepRunRecord, event_row, from_row, item_details
from workflow_engine.store.repository import Store

S = StepStatus
BATCH = 500

_r = t.step_runs
_current = _r.c.superseded.is_(False)
_dispatched = _r.c.status.in_([S.QUEUED, S.RETRYING])
# timers, and wait steps with a timeout (their deadline is a timer)
_timer = sa.and_(
    _r.c.status == S.WAITING,
    sa.or_(
        _r.c.step_type == StepType.TIMER,
        sa.and_(_r.c.step_type == StepType.WAIT, _r.c.not_before.is_not(None)),
    ),
)


def _stalled_carried(alive_since: datetime, idle_since: datetime) -> sa.ScalarSelect[Any]:
    """The oldest carried run of each execution whose carriers seem gone: nothing of it runs on
    a live worker, or its row has not moved since ``idle_since``. One is enough: the worker that
    takes its message records a branch, and so hands on the next carried one."""
    running, e = t.step_runs.alias("running"), t.executions
    carried_on = sa.exists().where(
        running.c.execution_id == _r.c.execution_id,
        running.c.status == S.RUNNING,
        running.c.heartbeat_at >= alive_since,
    )
    moving = sa.exists().where(e.c.id == _r.c.execution_id, e.c.updated_at >= idle_since)
    return (
        sa.select(sa.func.min(_r.c.id))
        .where(_r.c.carried, _r.c.status == S.QUEUED, _r.c.published_at < idle_since)
        .where(sa.not_(sa.and_(carried_on, moving)))
        .group_by(_r.c.execution_id)
        .scalar_subquery()
    )


class Repairs:
    def __init__(self, store: Store) -> None:
        self.store = store

    def _runs(self, condition: sa.ColumnElement[bool]) -> list[StepRunRecord]:
        query = sa.select(_r).where(_current, condition).order_by(_r.c.id).limit(BATCH)
        with self.store.reading() as conn:
            return [from_row(StepRunRecord, row) for row in conn.execute(query)]

    def never_published(self, due_by: datetime) -> list[StepRunRecord]:
        """Runs to publish that never were (deferred past the ETA horizon, or the broker was
        down), due by ``due_by``."""
        due = sa.or_(_r.c.not_before.is_(None), _r.c.not_before <= due_by)
        return self._runs(sa.and_(sa.or_(_dispatched, _timer), _r.c.published_at.is_(None), due))

    def overdue(self, published_before: datetime) -> list[StepRunRecord]:
        """Runs published before ``published_before`` (and due by then) that no worker took: their
        message was lost. Not carried runs: those have no message (see :meth:`stranded`)."""
        due = sa.or_(_r.c.not_before.is_(None), _r.c.not_before < published_before)
        return self._runs(
            sa.and_(_dispatched, _r.c.published_at < published_before, due, _r.c.carried.is_(False))
        )

    def stranded(self, alive_since: datetime, idle_since: datetime) -> list[StepRunRecord]:
        """One carried run of each execution whose carriers seem gone."""
        return self._runs(_r.c.id.in_(_stalled_carried(alive_since, idle_since)))

    def silent(self, heard_before: datetime) -> list[StepRunRecord]:
        """Running attempts whose worker has not heartbeaten since ``heard_before``."""
        return self._runs(sa.and_(_r.c.status == S.RUNNING, _r.c.heartbeat_at < heard_before))

    def past_deadline(self, deadline_before: datetime) -> list[StepRunRecord]:
        return self._runs(sa.and_(_r.c.status == S.RUNNING, _r.c.deadline_at < deadline_before))

    def timers_due(self, due_before: datetime) -> list[StepRunRecord]:
        """Timers that should have fired before ``due_before`` (their message was lost)."""
        return self._runs(sa.and_(_timer, _r.c.not_before <= due_before))

    def stalled(self, idle_since: datetime) -> list[str]:
        """Running executions with nothing active and nothing waiting, unchanged since ``idle_since``."""
        e = t.executions
        query = (
            sa.select(e.c.id)
            .where(
                e.c.status == ExecutionStatus.RUNNING,
                e.c.active_steps == 0,
                e.c.waiting_steps == 0,
                e.c.updated_at < idle_since,
            )
            .limit(BATCH)
        )
        with self.store.reading() as conn:
            return [row.id for row in conn.execute(query)]

    def unsynced_children(self, idle_since: datetime) -> list[tuple[str, str, int | None]]:
        """Workflow steps (and items) waiting since before ``idle_since`` with no child running:
        a crash came between a decision and the start of its child, or between a child's end
        and its parent's hearing of it. As (execution, step, item index)."""
        child, e = t.executions.alias("child"), t.executions
        running_child = sa.exists().where(
            child.c.parent_execution_id == _r.c.execution_id,
            child.c.parent_step == _r.c.step_name,
            child.c.parent_index.is_not_distinct_from(_r.c.item_index),
            child.c.status.not_in(list(TERMINAL_EXECUTION)),
        )
        idle = sa.exists().where(e.c.id == _r.c.execution_id, e.c.updated_at < idle_since)
        query = (
            sa.select(_r.c.execution_id, _r.c.step_name, _r.c.item_index)
            .where(_current, _r.c.status == S.RUNNING, _r.c.step_type == StepType.WORKFLOW)
            .where(_r.c.queued_at < idle_since, idle, sa.not_(running_child))
            .order_by(_r.c.id)
            .limit(BATCH)
        )
        with self.store.reading() as conn:
            return [(row.execution_id, row.step_name, row.item_index) for row in conn.execute(query)]

    def orphans(self, idle_since: datetime) -> list[str]:
        """Child executions still going whose parent ended before ``idle_since``: the parent's
        cancel did not reach them."""
        child, parent = t.executions.alias("child"), t.executions.alias("parent")
        query = (
            sa.select(child.c.id)
            .join(parent, parent.c.id == child.c.parent_execution_id)
            .where(child.c.status.not_in(list(TERMINAL_EXECUTION)))
            .where(parent.c.status.in_(list(TERMINAL_EXECUTION)), parent.c.updated_at < idle_since)
            .limit(BATCH)
        )
        with self.store.reading() as conn:
            return [row.id for row in conn.execute(query)]

    def misaligned_children(self, idle_since: datetime) -> list[tuple[str, str]]:
        """Child executions whose parent's pause or resume did not reach them (the parent has
        not moved since ``idle_since``): as (child, "pause" or "resume")."""
        child, parent = t.executions.alias("child"), t.executions.alias("parent")
        going = [ExecutionStatus.RUNNING, ExecutionStatus.WAITING]
        verb = sa.case((child.c.status == ExecutionStatus.PAUSED, "resume"), else_="pause")
        query = (
            sa.select(child.c.id, verb.label("verb"))
            .join(parent, parent.c.id == child.c.parent_execution_id)
            .where(parent.c.updated_at < idle_since)
            .where(
                sa.or_(
                    sa.and_(child.c.status == ExecutionStatus.PAUSED, parent.c.status.in_(going)),
                    sa.and_(child.c.status.in_(going), parent.c.status == ExecutionStatus.PAUSED),
                )
            )
            .limit(BATCH)
        )
        with self.store.reading() as conn:
            return [(row.id, row.verb) for row in conn.execute(query)]

    def take_publishing(self, runs: Sequence[StepRunRecord], actor: str, reason: str) -> list[StepRunRecord]:
        """The runs of ``runs`` this caller may publish again: the first to move a run's
        ``published_at`` on wins it; each is recorded in its run's history."""
        mine: list[StepRunRecord] = []
        if not runs:
            return mine
        with self.store.transaction() as tx:
            for run in runs:
                previous = (
                    _r.c.published_at.is_(None)
                    if run.published_at is None
                    else _r.c.published_at == run.published_at
                )
                result = tx.execute(
                    sa.update(_r)
                    .where(_r.c.id == run.id, _r.c.status == run.status, previous)
                    .values(published_at=tx.now, carried=False)
                )
                if result.rowcount == 1:
                    mine.append(run)
            tx.insert_events(
                [
                    event_row(
                        run.execution_id,
                        run.step_name,
                        run.attempt,
                        run.status,
                        run.status,
                        actor,
                        tx.now,
                        reason,
                        item_details(run.item_index),
                    )
                    for run in mine
                ]
            )
            for execution_id in {run.execution_id for run in mine}:
                tx.notify(execution_id)
        return mine
