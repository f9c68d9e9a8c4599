"""Purging ended executions (`wfe db purge`), and retention (`WFE_RETENTION_DAYS`), which the
coordinators apply continuously, one of them at a time.

Executions are purged in batches, each its own short transaction; with an archive, each
execution (with its children, step runs, events and signals) is first written as one JSON line,
and the batch is deleted only once its lines are written.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import IO

from workflow_engine.clock import Clock
from workflow_engine.core.retention import purgeable
from workflow_engine.core.secrets import masked
from workflow_engine.store import purge as rows
from workflow_engine.store.repository import Store

log = logging.getLogger(__name__)
RETENTION_KEY = "retention"


@dataclass
class PurgeReport:
    cutoff: datetime
    dry_run: bool
    executions: int = 0  # top-level ones and their children
    rows: dict[str, int] = field(default_factory=dict)
    kept_running: int = 0  # ended, but with a child that still runs
    more: bool = False  # stopped after its batches with more to purge

    def as_dict(self) -> dict[str, object]:
        return {
            "cutoff": self.cutoff.isoformat(),
            "dry_run": self.dry_run,
            "executions": self.executions,
            "rows": self.rows,
            "kept_running": self.kept_running,
        }


class Purger:
    def __init__(
        self, store: Store, clock: Clock | None = None, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self.store = store
        self.clock = clock or store.clock
        self.sleep = sleep

    def purge(
        self,
        older_than: timedelta,
        statuses: Sequence[str] | None = None,
        workflow: str | None = None,
        archive: IO[str] | None = None,
        dry_run: bool = False,
        batch: int = 200,
        exclusive: bool = False,
        rest: float = 0.0,
        batches: int | None = None,
    ) -> PurgeReport:
        """Purge the ended executions that finished more than ``older_than`` ago (in
        ``statuses``, of ``workflow``); ``exclusive``: skip a batch another purger is on.
        After each batch it rests ``rest`` times as long as the batch took (the work it shares
        the database with goes on at its pace); it stops after ``batches`` batches."""
        chosen = purgeable(statuses)
        report = PurgeReport(self.clock.now() - older_than, dry_run)
        after = ""
        done = 0
        while True:
            if batches is not None and done == batches:
                report.more = True
                return report
            done += 1
            began = time.monotonic()
            with self.store.reading() as db:
                roots = rows.candidates(db, report.cutoff, chosen, workflow, batch, after)
                if not roots:
                    return report
                family, kept = rows.with_descendants(db, roots)
                documents = rows.documents(db, family) if archive is not None and not dry_run else []
                counted = rows.counts(db, family) if dry_run else {}
            report.kept_running += len(kept)
            after = roots[-1]
            if dry_run:
                self._count(report, counted)
                if len(roots) < batch:
                    return report
                continue
            for document in documents:
                assert archive is not None
                archive.write(json.dumps(masked(document), default=str, ensure_ascii=False) + "\n")
            if archive is not None:
                archive.flush()
            with self.store.transaction() as tx:
                if exclusive and not tx.try_serialize(RETENTION_KEY):
                    return report  # another coordinator is purging
                counted = rows.delete(tx, family)
            self._count(report, counted)
            if rest:
                self.sleep(rest * (time.monotonic() - began))
            if len(roots) < batch:
                return report  # (the last batch: nothing is left)

    @staticmethod
    def _count(report: PurgeReport, counted: dict[str, int]) -> None:
        report.executions += counted["executions"]
        for name, count in counted.items():
            report.rows[name] = report.rows.get(name, 0) + count


class Retention:
    """``WFE_RETENTION_DAYS`` applied by a coordinator every ``interval`` seconds (the first pass
    when it starts); several coordinators take turns, batch by batch. A pass is at most
    ``batches`` batches (the reconciler's tick it runs in stays short); one that leaves more to
    purge goes on at the next tick."""

    def __init__(
        self, purger: Purger, days: float | None, interval: float, batches: int = 10, batch: int = 200
    ) -> None:
        self.purger = purger
        self.days = days
        self.interval = timedelta(seconds=interval)
        self.batches = batches
        self.batch = batch
        self._next: datetime | None = None

    def due(self) -> PurgeReport | None:
        """A retention pass if one is due (what it purged), else None."""
        if self.days is None:
            return None
        now = self.purger.clock.now()
        if self._next is not None and now < self._next:
            return None
        report = self.purger.purge(
            timedelta(days=self.days), exclusive=True, batch=self.batch, batches=self.batches
        )
        self._next = now if report.more else now + self.interval
        if report.executions:
            log.info("retention: purged %s executions finished before %s", report.executions, report.cutoff)
        return report
