"""The scheduler: fires schedules from the database, once per fire time, from any coordinator.

Each due schedule is taken in its own transaction with its row locked (``SKIP LOCKED``: two
coordinators share the due schedules instead of queueing on them). In it, the pure core
(:mod:`workflow_engine.core.schedules`) says which fire times start and what each does under
the overlap policy; skips and missed fire times are recorded with why, a buffered start waits
in the schedule's row, and each start is recorded as a *pending* fire (unique per schedule and
fire time) before the cursor moves on. Once committed, each pending fire starts its execution
under the idempotency key ``schedule:<id>:<fire time>``, and the execution's id is written to the
fire in the transaction that creates the execution. A coordinator that stops between the two
leaves a pending fire, which any scheduler starts later: the key makes a second start return
the first.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

from workflow_engine.clock import Clock
from workflow_engine.coordinator.service import Coordinator
from workflow_engine.core import schedules as rules
from workflow_engine.core.schedules import Action, Overlap, Timing
from workflow_engine.errors import Conflict, NotFound, ScheduleNotFound, StoreError, WorkflowEngineError
from workflow_engine.outages import DATABASE, is_outage
from workflow_engine.secrets import Binding
from workflow_engine.settings import Settings
from workflow_engine.store import schedules as rows
from workflow_engine.store.records import FireRecord, ScheduleRecord
from workflow_engine.store.transaction import Tx
from workflow_engine.users import may_start

log = logging.getLogger(__name__)
ACTOR = "scheduler"


def timing_of(record: ScheduleRecord) -> Timing:
    return Timing(cron=record.cron, every=record.every, timezone=record.timezone, anchor=record.created_at)


def idempotency_key(schedule_id: int, fire_time: datetime) -> str:
    return f"schedule:{schedule_id}:{fire_time.isoformat()}"


@dataclass(frozen=True)
class Fired:
    """What one fire time did: ``action``, and the execution it started (if it did)."""

    fire_time: datetime
    action: str
    execution_id: str | None = None
    error: str | None = None


class Scheduler:
    def __init__(self, coordinator: Coordinator, settings: Settings, clock: Clock | None = None) -> None:
        self.coordinator = coordinator
        self.store = coordinator.store
        self.settings = settings
        self.clock = clock or coordinator.store.clock
        self._stop = threading.Event()

    # firing

    def tick(self) -> list[Fired]:
        """Fire every due schedule this scheduler takes, and start pending fires left behind."""
        now = self.clock.now()
        # a fire left pending longer than a start takes: its coordinator stopped
        left_before = now - timedelta(seconds=max(5.0, 5 * self.settings.schedule_interval))
        with self.store.reading() as db:
            due = rows.due(db, now)
            stranded = rows.pending(db, left_before)
        fired: list[Fired] = []
        for schedule_id in due:
            fired.extend(self._guarded(partial(self._advance, schedule_id)))
        for fire in stranded:
            fired.extend(self._guarded(partial(self._start_pending, fire)))
        return fired

    def _guarded(self, action: partial[list[Fired]]) -> list[Fired]:
        try:
            return action()
        except Exception as exc:  # one broken schedule must not stop the others
            if is_outage(exc):
                raise  # (the database is: the pass stops, and waits for it)
            log.exception("scheduler: %s failed", action.func.__name__)
            return []

    def _advance(self, schedule_id: int) -> list[Fired]:
        with self.store.transaction() as tx:
            record = rows.take(tx, schedule_id)
            if record is None or record.paused:
                return []
            due = rules.due(
                timing_of(record),
                record.next_fire_at,
                tx.now,
                record.catchup_window,
                self.settings.schedule_late_after,
            )
            times = list(due.start)
            buffered = record.buffered_at
            live = rows.live_fires(tx, schedule_id)
            if buffered is not None and not live:
                times.insert(0, buffered)  # the start that waited goes first
                buffered = None
            decided = rules.actions(Overlap(record.overlap), bool(live), buffered is not None, len(times))
            fired, pending = self._record(tx, record, list(zip(times, decided, strict=True)), live)
            buffered = next((t for t, a in zip(times, decided, strict=True) if a is Action.BUFFER), buffered)
            rows.update(tx, schedule_id, {"next_fire_at": due.cursor, "buffered_at": buffered})
            if due.missed is not None:
                reason = rules.missed_reason(record.catchup_window, tx.now)
                rows.insert_missed(tx, schedule_id, due.missed, rules.MISSED, reason, tx.now)
            if due.missed_since is not None:
                missed = {"since": due.missed_since.isoformat(), "until": tx.now.isoformat()}
                rows.record_change(tx, record, "missed", ACTOR, tx.now, missed)
        return fired + self._start_all(record, pending, live)

    def trigger(self, schedule_id: int, actor: str) -> Fired:
        """Fire now, whatever the timing says, under the overlap policy; recorded with ``actor``."""
        with self.store.transaction() as tx:
            record = rows.schedule_by_id(tx, schedule_id, lock=True)
            if record is None:
                raise ScheduleNotFound(str(schedule_id))
            live = rows.live_fires(tx, schedule_id)
            action = rules.overlap(Overlap(record.overlap), bool(live), record.buffered_at is not None)
            fired, pending = self._record(tx, record, [(tx.now, action)], live)
            if not fired and not pending:
                raise Conflict(f"schedule {record.name!r} fired at {tx.now.isoformat()} already")
            if action is Action.BUFFER:
                rows.update(tx, schedule_id, {"buffered_at": tx.now})
            rows.record_change(tx, record, "triggered", actor, tx.now, {"action": str(action)})
        return (fired + self._start_all(record, pending, live))[0]

    def _record(
        self, tx: Tx, record: ScheduleRecord, decided: list[tuple[datetime, Action]], live: list[FireRecord]
    ) -> tuple[list[Fired], list[FireRecord]]:
        """Record skips (with why) and pending starts (buffered ones are kept in the schedule's
        row)."""
        fired: list[Fired] = []
        pending: list[FireRecord] = []
        for fire_time, action in decided:
            if action is Action.BUFFER:
                fired.append(Fired(fire_time, action))
                continue
            reason = (
                rules.skip_reason(Overlap(record.overlap), rows.ids(live)) if action is Action.SKIP else None
            )
            fire_id = rows.insert_fire(tx, record.id, fire_time, action, tx.now, reason=reason)
            if fire_id is None:  # handled already (the database refuses it twice)
                continue
            if action is Action.SKIP:
                fired.append(Fired(fire_time, action))
            else:
                pending.append(FireRecord(fire_id, record.id, fire_time, action, None, None, True, tx.now))
        return fired, pending

    def _start_all(
        self, record: ScheduleRecord, pending: list[FireRecord], live: list[FireRecord]
    ) -> list[Fired]:
        fired = []
        for fire in pending:
            if fire.action == Action.CANCEL_AND_START:
                self._cancel(record, rows.ids(live), fire.fire_time)
            fired.append(self._start(record, fire))
        return fired

    def _start_pending(self, fire: FireRecord) -> list[Fired]:
        with self.store.transaction() as tx:
            record = rows.schedule_by_id(tx, fire.schedule_id)
            live = rows.live_fires(tx, fire.schedule_id) if record else []
        if record is None:
            return []
        others = [f for f in live if f.id != fire.id]
        return self._start_all(record, [fire], others)

    def _cancel(self, record: ScheduleRecord, execution_ids: list[str], fire_time: datetime) -> None:
        reason = f"schedule {record.name!r} fired at {fire_time.isoformat()} (overlap: cancel_other)"
        for execution_id in execution_ids:
            with contextlib.suppress(Conflict, NotFound):  # it ended meanwhile
                self.coordinator.cancel(execution_id, f"schedule:{record.name}", reason=reason)

    def _start(self, record: ScheduleRecord, fire: FireRecord) -> Fired:
        when = fire.fire_time.isoformat()
        try:
            may_start(self.store, record.owner_id)  # (nothing for an owner disabled, deleted or a viewer)
            execution = self.coordinator.start(
                record.workflow,
                input_data=record.input,
                metadata={"schedule": record.name, "scheduled_at": when},
                version=record.version,
                owner_id=record.owner_id,
                idempotency_key=idempotency_key(record.id, fire.fire_time),
                actor=f"schedule:{record.name}",
                visible_to=record.owner_id,
                on_insert=lambda tx, execution_id: rows.started(tx, fire.id, execution_id),
                sealed_by=Binding.schedule(record.owner_id, record.name),  # (its input's secrets)
            )
        except StoreError:
            raise  # the fire stays pending: started again later
        except WorkflowEngineError as exc:
            error = str(exc)
            with self.store.transaction() as tx:
                if rows.failed(tx, fire.id, error):
                    details = {"fire_time": when, "error": error}
                    rows.record_change(tx, record, "fire failed", ACTOR, tx.now, details)
            log.warning("schedule %s: fire time %s did not start: %s", record.name, when, error)
            return Fired(fire.fire_time, "failed", error=error)
        return Fired(fire.fire_time, fire.action, execution.id)

    # running

    def wait_time(self) -> float:
        """How long to sleep: until the next fire time, at most ``schedule_interval``."""
        with self.store.reading() as db:
            earliest = rows.earliest(db)
        longest = self.settings.schedule_interval
        if earliest is None:
            return longest
        return min(longest, max(0.0, (earliest - self.clock.now()).total_seconds()))

    def run(self) -> None:
        """Tick after tick until :meth:`stop`."""
        while not self._stop.is_set():
            pause = self.settings.schedule_interval
            try:
                self.tick()
                pause = self.wait_time()
                DATABASE.ok()
            except Exception as exc:
                if is_outage(exc):
                    DATABASE.failed(exc)
                    pause = DATABASE.pause(pause)
                else:
                    log.exception("scheduler pass failed")
            self._stop.wait(pause)

    def start_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, name="wfe-scheduler", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()
