"""Fleet-wide rate limits in the database: a sliding log of start times per key.

A start is admitted when fewer than ``count`` starts of its key were recorded in the last
``period`` seconds, and recorded in the same transaction, which holds the key meanwhile: any
number of workers, on any number of machines, see one log. Recorded times only move forward
(a start is recorded at the later of its transaction's time and the key's last start), so any
window of ``period`` seconds holds at most ``count`` recorded starts, whatever the order the
transactions ran in. Times older than the window are deleted as new starts are recorded.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa

from workflow_engine.clock import Clock
from workflow_engine.core.limits import Rate
from workflow_engine.core.states import StepStatus
from workflow_engine.store import schema as t
from workflow_engine.store.transaction import Tx

r = t.rate_starts
TICK = timedelta(microseconds=1)


def take(tx: Tx, key: str, rate: Rate, clock: Clock) -> tuple[datetime | None, datetime | None]:
    """Record a start of ``key`` now if ``rate`` allows it: (the time recorded, None); or
    (None, the time the window has room again), nothing recorded."""
    tx.hold(f"rate:{key}", clock)
    window = timedelta(seconds=rate.period)
    query = sa.select(r.c.at).where(r.c.key == key, r.c.at > tx.now - window)
    recent: list[datetime] = [row.at for row in tx.execute(query.order_by(r.c.at.desc()).limit(rate.count))]
    if len(recent) >= rate.count:
        return None, recent[-1] + window
    at = max(tx.now, recent[0] + TICK) if recent else tx.now
    tx.execute(sa.insert(r).values(key=key, at=at))
    tx.execute(sa.delete(r).where(r.c.key == key, r.c.at <= at - window))
    return at, None


def wait(tx: Tx, run_id: int, until: datetime) -> None:
    """A queued run waits for its window: due ``until``, its message published now."""
    runs = t.step_runs
    waiting = sa.update(runs).where(runs.c.id == run_id, runs.c.status == StepStatus.QUEUED)
    tx.execute(waiting.values(not_before=until, published_at=tx.now))
