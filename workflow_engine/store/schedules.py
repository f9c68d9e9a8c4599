"""Schedules in the database: their rows, the fire times they handled, and their changes.

Functions over an open transaction (:class:`~workflow_engine.store.transaction.Tx`) or a reading
connection; both dialects run the same statements (SQLite ignores ``FOR UPDATE``: it runs one
write transaction at a time).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from workflow_engine.core.schedules import NOT_STARTED, Missed
from workflow_engine.core.states import TERMINAL_EXECUTION
from workflow_engine.store import schema as t
from workflow_engine.store.database import StatementRunner
from workflow_engine.store.records import FireRecord, ScheduleChangeRecord, ScheduleRecord, from_row

s, f, c = t.schedules, t.schedule_fires, t.schedule_changes


@dataclass(frozen=True, slots=True)
class NotStarted:
    """Fire times that started nothing: one, or a run of them from ``fire_time`` to
    ``last_fire_time`` (``fire_count`` of them, None when too many were counted), and why."""

    fire_time: datetime
    action: str
    reason: str | None
    error: str | None
    last_fire_time: datetime | None
    fire_count: int | None

    def as_dict(self) -> dict[str, Any]:
        last = self.last_fire_time or self.fire_time
        return {
            "scheduled_at": self.fire_time.isoformat(),
            "until": last.isoformat(),
            "count": self.fire_count if self.last_fire_time is not None else 1,
            "action": self.action,
            "reason": self.reason or self.error,
        }


def insert(tx: StatementRunner, values: Mapping[str, Any]) -> int | None:
    """A new schedule's id, or None when its owner has one of that name (names are per owner)."""
    taken = sa.select(s.c.id).where(s.c.owner_id == values["owner_id"], s.c.name == values["name"])
    if tx.execute(taken).first() is not None:
        return None
    return int(tx.execute(sa.insert(s).values(dict(values)).returning(s.c.id)).scalar_one())


def get(db: StatementRunner, name: str, owner_id: int, lock: bool = False) -> ScheduleRecord | None:
    """``owner_id``'s schedule named ``name``, locked if ``lock``."""
    query = sa.select(s).where(s.c.owner_id == owner_id, s.c.name == name)
    if lock:
        query = query.with_for_update()
    row = db.execute(query).first()
    return None if row is None else from_row(ScheduleRecord, row)


def take(tx: StatementRunner, schedule_id: int) -> ScheduleRecord | None:
    """The schedule, locked, unless another transaction holds it (it is firing it)."""
    query = sa.select(s).where(s.c.id == schedule_id).with_for_update(skip_locked=True)
    row = tx.execute(query).first()
    return None if row is None else from_row(ScheduleRecord, row)


def listing(db: StatementRunner, owner_id: int | None = None) -> list[ScheduleRecord]:
    query = sa.select(s).order_by(s.c.name)
    if owner_id is not None:
        query = query.where(s.c.owner_id == owner_id)
    return [from_row(ScheduleRecord, row) for row in db.execute(query)]


def naming(db: StatementRunner, workflow: str) -> list[ScheduleRecord]:
    """Every schedule that starts ``workflow`` (at any version), whoever owns it."""
    query = sa.select(s).where(s.c.workflow == workflow).order_by(s.c.name)
    return [from_row(ScheduleRecord, row) for row in db.execute(query)]


def update(tx: StatementRunner, schedule_id: int, values: Mapping[str, Any]) -> None:
    tx.execute(sa.update(s).where(s.c.id == schedule_id).values(dict(values)))


def delete(tx: StatementRunner, schedule_id: int) -> None:
    """The schedule and its fire times go; its changes stay, detached from any schedule (SQLite
    may give its id to the next one: they must not become that one's history)."""
    tx.execute(sa.delete(f).where(f.c.schedule_id == schedule_id))
    tx.execute(sa.update(c).where(c.c.schedule_id == schedule_id).values(schedule_id=None))
    tx.execute(sa.delete(s).where(s.c.id == schedule_id))


def due(db: StatementRunner, now: datetime) -> list[int]:
    """Schedules with a fire time due, or a start waiting for the previous execution to end."""
    active = s.c.paused.is_(False)
    query = sa.select(s.c.id).where(active, (s.c.next_fire_at <= now) | s.c.buffered_at.is_not(None))
    return [int(row.id) for row in db.execute(query.order_by(s.c.next_fire_at))]


def earliest(db: StatementRunner) -> datetime | None:
    """The next fire time of any schedule that is not paused."""
    value: datetime | None = db.execute(
        sa.select(sa.func.min(s.c.next_fire_at)).where(s.c.paused.is_(False))
    ).scalar()
    return value


def insert_fire(
    tx: StatementRunner,
    schedule_id: int,
    fire_time: datetime,
    action: str,
    now: datetime,
    error: str | None = None,
    reason: str | None = None,
) -> int | None:
    """Record a fire time handled; None when it was already (the database refuses a second)."""
    values = {
        "schedule_id": schedule_id,
        "fire_time": fire_time,
        "action": action,
        "execution_id": None,
        "error": error,
        "reason": reason,
        "live": error is None and action not in NOT_STARTED,
        "fire_count": 1 if action in NOT_STARTED else None,
        "created_at": now,
    }
    exists = sa.select(f.c.id).where(f.c.schedule_id == schedule_id, f.c.fire_time == fire_time)
    if tx.execute(exists).first() is not None:
        return None
    return int(tx.execute(sa.insert(f).values(values).returning(f.c.id)).scalar_one())


def insert_missed(
    tx: StatementRunner, schedule_id: int, missed: Missed, action: str, reason: str, now: datetime
) -> None:
    """Record a run of fire times that started nothing (missed, or while paused) as one row
    (once: a second for the same first fire time is refused, as any fire's)."""
    values = {
        "schedule_id": schedule_id,
        "fire_time": missed.first,
        "action": action,
        "execution_id": None,
        "error": None,
        "reason": reason,
        "live": False,
        "last_fire_time": missed.last,
        "fire_count": missed.count,
        "created_at": now,
    }
    exists = sa.select(f.c.id).where(f.c.schedule_id == schedule_id, f.c.fire_time == missed.first)
    if tx.execute(exists).first() is None:
        tx.execute(sa.insert(f).values(values))


def not_started(db: StatementRunner, schedule_id: int, limit: int = 10) -> list[NotStarted]:
    """The schedule's latest fire times that started nothing (skipped, missed, paused, failed),
    newest first."""
    query = (
        sa.select(f.c.fire_time, f.c.action, f.c.reason, f.c.error, f.c.last_fire_time, f.c.fire_count)
        .where(f.c.schedule_id == schedule_id, f.c.action.in_(sorted(NOT_STARTED)))
        .order_by(f.c.fire_time.desc())
        .limit(limit)
    )
    return [from_row(NotStarted, row) for row in db.execute(query)]


def started(tx: StatementRunner, fire_id: int, execution_id: str) -> None:
    """The execution a pending start created (in the transaction that created it)."""
    pending = sa.update(f).where(f.c.id == fire_id, f.c.execution_id.is_(None))
    tx.execute(pending.values(execution_id=execution_id))


def failed(tx: StatementRunner, fire_id: int, error: str) -> bool:
    """A pending start that could not start; False when it had started after all."""
    result = tx.execute(
        sa.update(f)
        .where(f.c.id == fire_id, f.c.execution_id.is_(None))
        .values(action="failed", error=error, live=False, fire_count=1)
        .returning(f.c.id)
    )
    return result.first() is not None


def _with_status() -> sa.Select[Any]:
    e = t.executions
    return sa.select(f, e.c.status).select_from(f.outerjoin(e, e.c.id == f.c.execution_id))


def live_fires(tx: StatementRunner, schedule_id: int) -> list[FireRecord]:
    """The schedule's starts that may still run: pending ones, and those whose execution has not
    ended. Those seen ended are marked so, and not read again."""
    query = _with_status().where(f.c.schedule_id == schedule_id, f.c.live)
    rows = [from_row(FireRecord, row) for row in tx.execute(query)]
    ended = [
        r.id
        for r in rows
        if r.execution_id is not None and (r.status is None or r.status in TERMINAL_EXECUTION)
    ]
    if ended:
        tx.execute(sa.update(f).where(f.c.id.in_(ended)).values(live=False))
    return [r for r in rows if r.id not in ended]


def pending(db: StatementRunner, created_before: datetime) -> list[FireRecord]:
    """Starts decided but not made (the coordinator that decided them stopped), oldest first."""
    query = _with_status().where(f.c.live, f.c.execution_id.is_(None), f.c.created_at < created_before)
    return [from_row(FireRecord, row) for row in db.execute(query.order_by(f.c.id))]


def schedule_by_id(db: StatementRunner, schedule_id: int, lock: bool = False) -> ScheduleRecord | None:
    query = sa.select(s).where(s.c.id == schedule_id)
    row = db.execute(query.with_for_update() if lock else query).first()
    return None if row is None else from_row(ScheduleRecord, row)


def recent_fires(
    db: StatementRunner, schedule_id: int, limit: int = 10, started_only: bool = True
) -> list[FireRecord]:
    query = _with_status().where(f.c.schedule_id == schedule_id)
    if started_only:
        query = query.where(f.c.execution_id.is_not(None))
    rows = db.execute(query.order_by(f.c.fire_time.desc()).limit(limit))
    return [from_row(FireRecord, row) for row in rows]


def record_change(
    tx: StatementRunner,
    schedule: ScheduleRecord,
    action: str,
    actor: str,
    now: datetime,
    details: Mapping[str, Any] | None = None,
) -> None:
    """A change made to ``schedule``, part of its history (and of no other schedule's)."""
    values = {
        "schedule_id": schedule.id,
        "schedule_name": schedule.name,
        "action": action,
        "actor": actor,
        "details": details,
        "created_at": now,
    }
    tx.execute(sa.insert(c).values(values))


def changes(db: StatementRunner, schedule_id: int, limit: int = 20) -> list[ScheduleChangeRecord]:
    """The schedule's latest changes, newest first."""
    query = sa.select(c).where(c.c.schedule_id == schedule_id).order_by(c.c.id.desc()).limit(limit)
    return [from_row(ScheduleChangeRecord, row) for row in db.execute(query)]


def ids(fires: Sequence[FireRecord]) -> list[str]:
    return [fire.execution_id for fire in fires if fire.execution_id is not None]
