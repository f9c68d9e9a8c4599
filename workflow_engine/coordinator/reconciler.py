"""The reconciler: repairs from the database whatever a crash or a lost message left behind.

Each pass, with the clock injected:

- publishes runs that were never published (deferred past the ETA horizon, or the broker was
  down) once they are due, and runs whose message is overdue (lost with a broker); of the runs
  a fan-out carried, one per execution whose carriers seem gone (nothing of it runs on a live
  worker, or it has not moved for ``redispatch_after``): its worker carries the rest;
- runs again attempts whose worker stopped heartbeating;
- times out attempts running past their step's timeout;
- fires timers whose message was lost;
- re-plans executions that have nothing running and nothing waiting;
- starts the child a workflow step waits for, or tells the parent of a child that ended, when
  a crash came between the two; cancels children whose parent ended without them;
- starts executions waiting for a concurrency slot that is free (its holder ended, and what
  ended it stopped before starting the next);
- purges ended executions older than ``WFE_RETENTION_DAYS`` (every ``WFE_RETENTION_INTERVAL``).

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

from workflow_engine.clock import Clock
from workflow_engine.coordinator.service import Coordinator
from workflow_engine.outages import DATABASE, is_outage
from workflow_engine.retention import Purger, Retention
from workflow_engine.settings import Settings
from workflow_engine.store import slots
from workflow_engine.store.records import StepRunRecord
from workflow_engine.store.repairs import Repairs

log = logging.getLogger(__name__)


@dataclass
class Report:
    published: int = 0
    republished: int = 0
    lost: int = 0
    timed_out: int = 0
    timers: int = 0
    repaired: int = 0
    children: int = 0
    slots: int = 0
    purged: int = 0
    errors: list[str] = field(default_factory=list)

    def total(self) -> int:
        return (
            self.published
            + self.republished
            + self.lost
            + self.timed_out
            + self.timers
            + self.repaired
            + self.children
            + self.slots
            + self.purged
        )

    def as_dict(self) -> dict[str, object]:
        return {
            "published": self.published,
            "republished": self.republished,
            "lost": self.lost,
            "timed_out": self.timed_out,
            "timers": self.timers,
            "repaired": self.repaired,
            "children": self.children,
            "slots": self.slots,
            "purged": self.purged,
            "errors": self.errors,
        }


class Reconciler:
    def __init__(self, coordinator: Coordinator, settings: Settings, clock: Clock | None = None) -> None:
        self.coordinator = coordinator
        self.store = coordinator.store
        self.repairs = Repairs(coordinator.store)
        self.settings = settings
        self.clock = clock or coordinator.store.clock
        self._stop = threading.Event()
        purger = Purger(coordinator.store, self.clock)
        self.retention = Retention(purger, settings.retention_days, settings.retention_interval)

    def tick(self) -> Report:
        """One pass over everything; safe to run at any time, from any number of processes."""
        report = Report()
        now = self.clock.now()
        s = self.settings
        stale = now - timedelta(seconds=s.redispatch_after)
        lost_before = now - timedelta(seconds=s.worker_lost_after)
        horizon = now + timedelta(seconds=s.reconcile_interval)

        publish = self._publish
        report.published = publish(
            self.repairs.never_published(horizon), "publishing: due and never published"
        )
        report.republished = publish(self.repairs.overdue(stale), "publishing again: its message is overdue")
        stranded = self.repairs.stranded(lost_before, stale)
        report.republished += publish(stranded, "publishing: carried, its carriers gone")

        for run in self.repairs.silent(lost_before):
            report.lost += self._attempt(report, "lost", partial(self.coordinator.recover_lost, run.id))
        for run in self.repairs.past_deadline(now - timedelta(seconds=s.timeout_grace)):
            report.timed_out += self._attempt(report, "timeout", partial(self.coordinator.time_out, run.id))
        for run in self.repairs.timers_due(now - timedelta(seconds=s.reconcile_interval)):
            fire = partial(self.coordinator.fire_timer, run.id, "reconciler")
            report.timers += self._attempt(report, "timer", fire)
        for execution_id in self.repairs.stalled(stale):
            report.repaired += self._attempt(report, "repair", partial(self.coordinator.repair, execution_id))
        for parent, step, index in self.repairs.unsynced_children(stale):
            sync = partial(self.coordinator.children.sync, parent, step, index)
            report.children += self._attempt(report, "child", sync)
        for child in self.repairs.orphans(stale):
            report.children += self._attempt(report, "orphan", partial(self._cancel_orphan, child))
        for child, verb in self.repairs.misaligned_children(stale):
            report.children += self._attempt(report, verb, partial(self._align, child, verb))

        with self.store.reading() as db:
            waiting = slots.waiting_keys(db)
        for key in waiting:
            report.slots += self._attempt(report, "slots", partial(self.coordinator.slots.release, key))

        report.purged += self._attempt(report, "retention", self._retain)
        self.store.forget_workers(now - timedelta(days=1))
        if report.total():
            log.info("reconciler: %s", report.as_dict())
        return report

    def _retain(self) -> int:
        purged = self.retention.due()
        return purged.executions if purged is not None else 0

    def _align(self, execution_id: str, verb: str) -> bool:
        """Pause or resume a child as its parent is."""
        if verb == "pause":
            self.coordinator.pause(execution_id, "reconciler", reason="its parent is paused")
        else:
            self.coordinator.resume(execution_id, "reconciler")
        return True

    def _cancel_orphan(self, execution_id: str) -> bool:
        self.coordinator.cancel(execution_id, "reconciler", reason="its parent ended")
        return True

    def _publish(self, runs: list[StepRunRecord], reason: str) -> int:
        """Publish the runs this reconciler wins the right to publish (see Repairs.take_publishing)."""
        return self.coordinator.republish(self.repairs.take_publishing(runs, "reconciler", reason))

    @staticmethod
    def _attempt(report: Report, what: str, action: Callable[[], bool | int]) -> int:
        try:
            return int(action())
        except Exception as exc:  # one broken execution must not stop the pass
            if is_outage(exc):
                raise  # (the database is: the pass stops, and waits for it)
            log.exception("reconciler: %s failed", what)
            report.errors.append(f"{what}: {exc}")
            return 0

    def run(self, interval: float | None = None) -> None:
        """Pass after pass until :meth:`stop`."""
        pause = interval if interval is not None else self.settings.reconcile_interval
        while not self._stop.is_set():
            try:
                self.tick()
                DATABASE.ok()
            except Exception as exc:
                if is_outage(exc):
                    DATABASE.failed(exc)
                else:
                    log.exception("reconciler pass failed")
            self._stop.wait(DATABASE.pause(pause))

    def start_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, name="wfe-reconciler", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()
