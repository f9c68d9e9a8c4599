"""Schedules as users manage them: create, list, show, pause, resume, trigger, delete.

``engine.schedules``, ``wfe schedule`` and ``/api/v1/schedules`` all call this. A schedule
belongs to whoever created it, and its name is unique among its owner's schedules only: a call
that names one looks it up among ``owner_id``'s (None: the deployment's, the system user's, as
``wfe`` acts), so another owner's schedule is not found, and no name tells whether another user
has one. :meth:`Schedules.list` with no owner lists everyone's (an admin's view), each with its
owner. Every change is recorded with its actor, in the schedule's own history (by its id: a
schedule made later with a deleted one's name has none of it). Firing is
:mod:`workflow_engine.coordinator.scheduler`'s.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from workflow_engine.coordinator.scheduler import Fired, Scheduler, timing_of
from workflow_engine.core import quotas
from workflow_engine.core import schedules as rules
from workflow_engine.core.schedules import Overlap, Timing
from workflow_engine.core.secrets import masked
from workflow_engine.errors import Conflict, InputError, Problem, ScheduleNotFound, UserNotFound
from workflow_engine.secrets import Binding
from workflow_engine.store import quotas as counted
from workflow_engine.store import schedules as rows
from workflow_engine.store.records import ScheduleRecord
from workflow_engine.store.transaction import Tx

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")  # matched whole (fullmatch)
MAX_CATCHUP = 366 * 86400
NAME_RULE = "1 to 100 letters, digits, '_', '.' or '-', starting with a letter or digit"
OVERLAPS = tuple(Overlap)
SETTINGS = ("workflow", "version", "cron", "every", "timezone", "overlap", "catchup_window")


@dataclass(frozen=True)
class ScheduleView:
    name: str
    workflow: str
    version: str | None
    cron: str | None
    every: int | None
    timezone: str
    input: Any
    overlap: str
    catchup_window: int
    paused: bool
    next_fire_times: list[datetime]
    last_executions: list[dict[str, Any]]
    changes: list[dict[str, Any]] = field(default_factory=list)
    created_at: datetime | None = None
    # the latest fire times that started nothing, newest first: {scheduled_at, until, count,
    # action (skipped, missed, paused, failed), reason}
    skipped_fires: list[dict[str, Any]] = field(default_factory=list)
    owner: str | None = None  # the owner's username

    def as_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["next_fire_times"] = [t.isoformat() for t in self.next_fire_times]
        out["created_at"] = self.created_at.isoformat() if self.created_at else None
        return out


class Schedules:
    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler
        self.store = scheduler.store
        self.coordinator = scheduler.coordinator

    def create(
        self,
        name: str,
        workflow: str,
        *,
        cron: str | None = None,
        every: int | None = None,
        timezone: str | None = None,
        input: dict[str, Any] | None = None,  # the contract's word
        version: str | None = None,
        overlap: str = Overlap.SKIP,
        catchup_window: int = 0,
        owner_id: int | None = None,
        actor: str = "api",
    ) -> ScheduleView:
        """A new schedule, first firing at its first fire time strictly after now (``every``
        N: N seconds from now). Every problem with it is one :class:`InputError`."""
        owner = owner_id if owner_id is not None else self.store.system_user_id()
        timing = Timing(cron=cron, every=every, timezone=timezone or "UTC")
        problems = [Problem(where, message) for where, message in timing.problems()]
        if not isinstance(name, str) or not NAME.fullmatch(name):
            problems.append(Problem("name", NAME_RULE))
        if overlap not in OVERLAPS:
            problems.append(Problem("overlap", f"must be one of {', '.join(OVERLAPS)}"))
        if not isinstance(catchup_window, int) or not 0 <= catchup_window <= MAX_CATCHUP:
            problems.append(Problem("catchup_window", f"must be 0 to {MAX_CATCHUP} seconds"))
        if problems:
            raise InputError("schedule", problems)
        record = self.store.get_workflow(workflow, version, visible_to=owner_id)
        definition = self.coordinator.definitions.get(record.id)
        data = self.coordinator.sealed_input(definition, input, "input", Binding.schedule(owner, name))
        with self.store.transaction() as tx:
            if owner != self.store.system_user_id():  # (the deployment's own are not limited)
                owned = counted.schedules_of(tx, owner)
                refusal = quotas.schedule_refusal(owned, every, self.coordinator.quotas)
                if refusal is not None:
                    raise refusal
            values = {
                "name": name,
                "owner_id": owner,
                "workflow": workflow,
                "version": version,
                "cron": cron,
                "every": every,
                "timezone": timing.timezone,
                "input": data,
                "overlap": str(overlap),
                "catchup_window": catchup_window,
                "paused": False,
                "created_at": tx.now,
                "updated_at": tx.now,
                "next_fire_at": Timing(cron, every, timing.timezone, tx.now).first_fire(tx.now),
            }
            schedule_id = rows.insert(tx, values)
            if schedule_id is None:
                raise Conflict(
                    f"you have a schedule named {name!r} already; choose another name or delete it"
                )
            created = rows.schedule_by_id(tx, schedule_id)
            assert created is not None  # (inserted just now, in this transaction)
            settings = {k: values[k] for k in SETTINGS}
            rows.record_change(tx, created, "created", actor, tx.now, {**settings, "input": masked(data)})
        return self.get(name, owner_id)

    def list(self, owner_id: int | None = None) -> list[ScheduleView]:
        """``owner_id``'s schedules by name; with None, everyone's (each with its owner)."""
        with self.store.reading() as db:
            return [self._view(db, record, history=False) for record in rows.listing(db, owner_id)]

    def _owner(self, owner_id: int | None) -> int:
        """Whose schedules a name is looked up among: ``owner_id``'s, or the deployment's."""
        return owner_id if owner_id is not None else self.store.system_user_id()

    def get(self, name: str, owner_id: int | None = None) -> ScheduleView:
        """``owner_id``'s schedule ``name`` (None: the deployment's) with its history."""
        with self.store.reading() as db:
            record = rows.get(db, name, self._owner(owner_id))
            if record is None:
                raise ScheduleNotFound(name)
            return self._view(db, record, history=True)

    show = get  # as `wfe schedule show`

    def pause(self, name: str, owner_id: int | None = None, actor: str = "api") -> ScheduleView:
        """No fire time starts anything until resumed (a paused schedule's buffered start waits)."""
        return self._change(name, owner_id, actor, "paused", lambda tx, record: {"paused": True})

    def resume(self, name: str, owner_id: int | None = None, actor: str = "api") -> ScheduleView:
        """Fire again from now on: fire times that fell while it was paused are not caught up
        (they are recorded as such)."""

        def resumed(tx: Tx, record: ScheduleRecord) -> dict[str, Any]:
            if not record.paused:
                return {}
            timing = timing_of(record)
            cursor = timing.first_at_or_after(tx.now)
            paused = timing.missed(record.next_fire_at, cursor)
            if paused is not None:
                reason = rules.paused_reason(tx.now)
                rows.insert_missed(tx, record.id, paused, rules.PAUSED, reason, tx.now)
            return {"paused": False, "next_fire_at": cursor}

        return self._change(name, owner_id, actor, "resumed", resumed)

    def trigger(self, name: str, owner_id: int | None = None, actor: str = "api") -> Fired:
        """Fire now, under the schedule's overlap policy (a paused schedule fires too)."""
        with self.store.reading() as db:
            record = rows.get(db, name, self._owner(owner_id))
        if record is None:
            raise ScheduleNotFound(name)
        return self.scheduler.trigger(record.id, actor)

    def delete(self, name: str, owner_id: int | None = None, actor: str = "api") -> None:
        """The schedule and its fire times go; the executions it started stay."""
        with self.store.transaction() as tx:
            record = rows.get(tx, name, self._owner(owner_id), lock=True)
            if record is None:
                raise ScheduleNotFound(name)
            rows.record_change(tx, record, "deleted", actor, tx.now)
            rows.delete(tx, record.id)  # (its history goes with it, detached)

    # reading and writing

    def _change(
        self, name: str, owner_id: int | None, actor: str, action: str, values_of: Any
    ) -> ScheduleView:
        with self.store.transaction() as tx:
            record = rows.get(tx, name, self._owner(owner_id), lock=True)
            if record is None:
                raise ScheduleNotFound(name)
            values = values_of(tx, record)
            if values:
                rows.update(tx, record.id, {**values, "updated_at": tx.now})
                rows.record_change(tx, record, action, actor, tx.now)
        return self.get(name, owner_id)

    def _view(self, db: Any, record: ScheduleRecord, history: bool) -> ScheduleView:
        now = self.store.clock.now()
        upcoming: list[datetime] = []
        if not record.paused:  # (what the scheduler starts, were it to run now)
            late_after = self.scheduler.settings.schedule_late_after
            upcoming = rules.upcoming(
                timing_of(record), record.next_fire_at, now, record.catchup_window, late_after
            )
        fires = rows.recent_fires(db, record.id, limit=10 if history else 1)
        skipped = [fire.as_dict() for fire in rows.not_started(db, record.id)] if history else []
        last = [
            {
                "execution_id": fire.execution_id,
                "scheduled_at": fire.fire_time.isoformat(),
                "status": fire.status,
            }
            for fire in fires
        ]
        changes = []
        if history:
            changes = [  # (details written before they were masked too)
                {
                    "action": c.action,
                    "actor": c.actor,
                    "at": c.created_at.isoformat(),
                    "details": masked(c.details),
                }
                for c in rows.changes(db, record.id)
            ]
        return ScheduleView(
            name=record.name,
            workflow=record.workflow,
            version=record.version,
            cron=record.cron,
            every=record.every,
            timezone=record.timezone,
            input=masked(record.input),
            overlap=record.overlap,
            catchup_window=record.catchup_window,
            paused=record.paused,
            next_fire_times=upcoming,
            last_executions=last,
            changes=changes,
            created_at=record.created_at,
            skipped_fires=skipped,
            owner=self._username(record.owner_id),
        )

    def _username(self, user_id: int) -> str | None:
        try:
            return self.store.get_user_by_id(user_id).username
        except UserNotFound:
            return None
