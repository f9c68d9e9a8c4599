"""Purging ended executions (`wfe db purge`), and retention (`WFE_RETENTION_DAYS`), which the
coordinators apply continuously, one of them at a time.

Executions are purged in batches, each its own short transaction; with an archive, each
execution (with its children, step runs, events and signals) is first written as one JSON line,
and the batch is deleted only once its lines are written.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import IO

from workflow_engine.clock import Clock
from workflow_engine.core.retention import purgeable
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

    def as_dict(self) -> dict[str, object]:
        return {
            "cutoff": self.cutoff.isoformat(),
            "dry_run": self.dry_run,
            "executions": self.executions,
            "rows": self.rows,
            "kept_running": self.kept_running,
        }


class Purger:
    def __init__(self, store: Store, clock: Clock | None = None) -> None:
        self.store = store
        self.clock = clock or store.clock

    def purge(
        self,
        older_than: timedelta,
        statuses: Sequence[str] | None = None,
        workflow: str | None = None,
        archive: IO[str] | None = None,
        dry_run: bool = False,
        batch: int = 200,
        exclusive: bool = False,
    ) -> PurgeReport:
        """Purge the ended executions that finished more than ``older_than`` ago (in
        ``statuses``, of ``workflow``); ``exclusive``: skip a batch another purger is on."""
        chosen = purgeable(statuses)
        report = PurgeReport(self.clock.now() - older_than, dry_run)
        after = ""
        while True:
            with self.store.reading() as db:
                roots = rows.candidates(db, report.cutoff, chosen, workflow, batch, after)
                if not roots:
                    return report
                family, kept = rows.with_descendants(db, roots)
                counted = rows.counts(db, family)
                documents = rows.documents(db, family) if archive is not None and not dry_run else []
            report.kept_running += len(kept)
            after = roots[-1]
            if dry_run:
                self._count(report, counted)
                continue
            for document in documents:
                assert archive is not None
                archive.write(json.dumps(document, default=str, ensure_ascii=False) + "\n")
            if archive is not None:
                archive.flush()
            with self.store.transaction() as tx:
                if exclusive and not tx.try_serialize(RETENTION_KEY):
                    return report  # another coordinator is purging
                rows.delete(tx, family)
            self._count(report, counted)

    @staticmethod
    def _count(report: PurgeReport, counted: dict[str, int]) -> None:
        report.executions += counted["executions"]
        for name, count in counted.items():
            report.rows[name] = report.rows.get(name, 0) + count


class Retention:
    """``WFE_RETENTION_DAYS`` applied by a coordinator every ``interval`` seconds (the first pass
    when it starts); several coordinators take turns, batch by batch."""

    def __init__(self, purger: Purger, days: float | None, interval: float) -> None:
        self.purger = purger
        self.days = days
        self.interval = timedelta(seconds=interval)
        self._next: datetime | None = None

    def due(self) -> PurgeReport | None:
        """A retention pass if one is due (what it purged), else None."""
        if self.days is None:
            return None
        now = self.purger.clock.now()
        if self._next is not None and now < self._next:
            return None
        self._next = now + self.interval
        report = self.purger.purge(timedelta(days=self.days), exclusive=True)
        if report.executions:
            log.info("retention: purged %s executions finished before %s", report.executions, report.cutoff)
        return report
