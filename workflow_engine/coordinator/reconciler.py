"""The reconciler: repairs from the database whatever a crash or a lost message left behind.

Each pass, with the clock injected:

- publishes runs that were never published (deferred past the ETA horizon, or the broker was
  down) once they are due, and runs whose message is overdue (lost with a broker); of the runs
  a fan-out carried, one per execution whose carriers seem gone (nothing of it runs on a live
  worker, or it has not moved for ``redispatch_after``): its worker carries the rest;
- runs again attempts whose worker stopped heartbeating;
- times out attempts running past their step's timeout;
- fires timers whose message was lost;
- re-plans executions that have nothing running and nothing waiting.

Every repair is a guarded transaction on a locked execution, so a pass is idempotent and any
number of reconcilers may run at once: the second to arrive finds nothing left to do.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from typing import Any

import sqlalchemy as sa

from workflow_engine.clock import Clock
from workflow_engine.coordinator.service import Coordinator
from workflow_engine.core.states import ExecutionStatus, StepStatus
from workflow_engine.definitions.model import StepType
from workflow_engine.settings import Settings
from workflow_engine.store import schema as t
from workflow_engine.store.records import StepRunRecord, from_row
from workflow_engine.store.transaction import event_row

log = logging.getLogger(__name__)

S = StepStatus
BATCH = 500


@dataclass
class Report:
    published: int = 0
    republished: int = 0
    lost: int = 0
    timed_out: int = 0
    timers: int = 0
    repaired: int = 0
    errors: list[str] = field(default_factory=list)

    def total(self) -> int:
        return self.published + self.republished + self.lost + self.timed_out + self.timers + self.repaired

    def as_dict(self) -> dict[str, object]:
        return {
            "published": self.published,
            "republished": self.republished,
            "lost": self.lost,
            "timed_out": self.timed_out,
            "timers": self.timers,
            "repaired": self.repaired,
            "errors": self.errors,
        }


def _stalled_carried(alive_since: object, idle_since: object) -> sa.ScalarSelect[Any]:
    """The oldest carried run of each execution whose carriers seem gone: nothing of it runs on
    a live worker, or its row has not moved since ``idle_since``. One is enough: the worker that
    takes its message records a branch, and so hands on the next carried one."""
    r, running, e = t.step_runs, t.step_runs.alias("running"), t.executions
    carried_on = sa.exists().where(
        running.c.execution_id == r.c.execution_id,
        running.c.status == S.RUNNING,
        running.c.heartbeat_at >= alive_since,
    )
    moving = sa.exists().where(e.c.id == r.c.execution_id, e.c.updated_at >= idle_since)
    return (
        sa.select(sa.func.min(r.c.id))
        .where(r.c.carried, r.c.status == S.QUEUED, r.c.published_at < idle_since)
        .where(sa.not_(sa.and_(carried_on, moving)))
        .group_by(r.c.execution_id)
        .scalar_subquery()
    )


class Reconciler:
    def __init__(self, coordinator: Coordinator, settings: Settings, clock: Clock | None = None) -> None:
        self.coordinator = coordinator
        self.store = coordinator.store
        self.settings = settings
        self.clock = clock or coordinator.store.clock
        self._stop = threading.Event()

    def tick(self) -> Report:
        """One pass over everything; safe to run at any time, from any number of processes."""
        report = Report()
        now = self.clock.now()
        s = self.settings
        r = t.step_runs
        dispatched = r.c.status.in_([S.QUEUED, S.RETRYING])
        timer = sa.and_(r.c.status == S.WAITING, r.c.step_type == StepType.TIMER)
        current = r.c.superseded.is_(False)
        horizon = now + timedelta(seconds=s.reconcile_interval)
        stale = now - timedelta(seconds=s.redispatch_after)

        due_unpublished = self._runs(
            sa.and_(
                current,
                sa.or_(dispatched, timer),
                r.c.published_at.is_(None),
                sa.or_(r.c.not_before.is_(None), r.c.not_before <= horizon),
            )
        )
        report.published = self._mark_and_publish(due_unpublished, "publishing: due and never published")

        lost_before = now - timedelta(seconds=s.worker_lost_after)
        overdue = self._runs(
            sa.and_(
                current,
                dispatched,
                r.c.published_at < stale,
                sa.or_(r.c.not_before.is_(None), r.c.not_before < stale),
                r.c.carried.is_(False),  # a carried run has no message: see below
            )
        )
        report.republished = self._mark_and_publish(overdue, "publishing again: its message is overdue")
        stranded = self._runs(sa.and_(current, r.c.id.in_(_stalled_carried(lost_before, stale))))
        report.republished += self._mark_and_publish(stranded, "publishing: carried, its carriers gone")

        for run in self._runs(sa.and_(current, r.c.status == S.RUNNING, r.c.heartbeat_at < lost_before)):
            report.lost += self._attempt(report, "lost", partial(self.coordinator.recover_lost, run.id))

        late = now - timedelta(seconds=s.timeout_grace)
        for run in self._runs(sa.and_(current, r.c.status == S.RUNNING, r.c.deadline_at < late)):
            report.timed_out += self._attempt(report, "timeout", partial(self.coordinator.time_out, run.id))

        fire_before = now - timedelta(seconds=s.reconcile_interval)
        for run in self._runs(sa.and_(current, timer, r.c.not_before <= fire_before)):
            fire = partial(self.coordinator.fire_timer, run.id, "reconciler")
            report.timers += self._attempt(report, "timer", fire)

        for execution_id in self._stalled(now - timedelta(seconds=s.redispatch_after)):
            report.repaired += self._attempt(report, "repair", partial(self.coordinator.repair, execution_id))

        self.store.forget_workers(now - timedelta(days=1))
        if report.total():
            log.info("reconciler: %s", report.as_dict())
        return report

    def _runs(self, condition: sa.ColumnElement[bool]) -> list[StepRunRecord]:
        query = sa.select(t.step_runs).where(condition).order_by(t.step_runs.c.id).limit(BATCH)
        with self.store.reading() as conn:
            return [from_row(StepRunRecord, row) for row in conn.execute(query)]

    def _mark_and_publish(self, runs: list[StepRunRecord], reason: str) -> int:
        """Claim the right to publish (the first reconciler to move published_at wins), record it
        in each run's history, then publish."""
        if not runs:
            return 0
        r = t.step_runs
        mine: list[StepRunRecord] = []
        with self.store.transaction() as tx:
            for run in runs:
                previous = (
                    r.c.published_at.is_(None)
                    if run.published_at is None
                    else r.c.published_at == run.published_at
                )
                result = tx.execute(
                    sa.update(r)
                    .where(r.c.id == run.id, r.c.status == run.status, previous)
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
                        "reconciler",
                        tx.now,
                        reason,
                    )
                    for run in mine
                ]
            )
            for execution_id in {run.execution_id for run in mine}:
                tx.notify(execution_id)
        return self.coordinator.republish(mine)

    def _stalled(self, idle_since: object) -> list[str]:
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

    @staticmethod
    def _attempt(report: Report, what: str, action: Callable[[], bool]) -> int:
        try:
            return int(action())
        except Exception as exc:  # one broken execution must not stop the pass
            log.exception("reconciler: %s failed", what)
            report.errors.append(f"{what}: {exc}")
            return 0

    def run(self, interval: float | None = None) -> None:
        """Pass after pass until :meth:`stop`."""
        pause = interval if interval is not None else self.settings.reconcile_interval
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:
                log.exception("reconciler pass failed")
            self._stop.wait(pause)

    def start_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, name="wfe-reconciler", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()
