"""Purging ended executions: found in bounded batches, read whole for an archive, deleted with
their step runs, events, signals and child executions, each batch its own short transaction
(running work is never blocked for long).

A top-level execution is purged with its children (and theirs) only when every one of them has
ended; a child is never purged on its own while its parent is kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from workflow_engine.core.states import TERMINAL_EXECUTION
from workflow_engine.store import schema as t
from workflow_engine.store.database import StatementRunner
from workflow_engine.store.records import EventRecord, ExecutionRecord, SignalRecord, StepRunRecord, from_row

e = t.executions
MAX_DEPTH = 64


def candidates(
    db: StatementRunner,
    cutoff: datetime,
    statuses: Sequence[str],
    workflow: str | None,
    limit: int,
    after: str = "",
) -> list[str]:
    """Up to ``limit`` top-level executions in ``statuses`` that finished before ``cutoff``, by id
    from ``after`` on (a dry run walks them all this way)."""
    query = sa.select(e.c.id).where(
        e.c.parent_execution_id.is_(None),
        e.c.status.in_(statuses),
        e.c.finished_at < cutoff,
        e.c.id > after,
    )
    if workflow is not None:
        query = query.where(e.c.workflow_name == workflow)
    return [str(row.id) for row in db.execute(query.order_by(e.c.id).limit(limit))]


def with_descendants(db: StatementRunner, roots: Sequence[str]) -> tuple[list[str], set[str]]:
    """The roots and all their descendants, and the roots that have a descendant still running
    (those are kept, with their whole family)."""
    family = list(roots)
    parent_of: dict[str, str] = {}
    level = list(roots)
    running: set[str] = set()
    for _ in range(MAX_DEPTH):
        if not level:
            break
        children = sa.select(e.c.id, e.c.parent_execution_id, e.c.status)
        query = children.where(e.c.parent_execution_id.in_(level))
        level = []
        for row in db.execute(query):
            parent_of[str(row.id)] = str(row.parent_execution_id)
            family.append(str(row.id))
            level.append(str(row.id))
            if row.status not in TERMINAL_EXECUTION:
                running.add(str(row.id))

    def root_of(execution_id: str) -> str:
        while execution_id in parent_of:
            execution_id = parent_of[execution_id]
        return execution_id

    kept = {root_of(execution_id) for execution_id in running}
    return [x for x in family if root_of(x) not in kept], kept


def documents(db: StatementRunner, ids: Sequence[str]) -> list[dict[str, Any]]:
    """Each execution with its step runs, events and signals, as JSON-ready documents."""
    executions = [from_row(ExecutionRecord, row) for row in db.execute(sa.select(e).where(e.c.id.in_(ids)))]
    runs = _grouped(db, t.step_runs, StepRunRecord, ids, t.step_runs.c.id)
    events = _grouped(db, t.events, EventRecord, ids, t.events.c.id)
    signals = _grouped(db, t.signals, SignalRecord, ids, t.signals.c.id)
    return [
        {
            "execution": asdict(record),
            "steps": runs.get(record.id, []),
            "events": events.get(record.id, []),
            "signals": signals.get(record.id, []),
        }
        for record in sorted(executions, key=lambda r: (r.depth, r.id))
    ]


def _grouped(
    db: StatementRunner, table: sa.Table, kind: Any, ids: Sequence[str], order: Any
) -> dict[str, list[Any]]:
    grouped: dict[str, list[Any]] = {}
    for row in db.execute(sa.select(table).where(table.c.execution_id.in_(ids)).order_by(order)):
        record = from_row(kind, row)
        grouped.setdefault(record.execution_id, []).append(asdict(record))
    return grouped


def counts(db: StatementRunner, ids: Sequence[str]) -> dict[str, int]:
    """How many rows purging ``ids`` deletes, by table."""
    found = {"executions": len(ids)}
    for name, table in (("step_runs", t.step_runs), ("events", t.events), ("signals", t.signals)):
        query = sa.select(sa.func.count()).select_from(table).where(table.c.execution_id.in_(ids))
        found[name] = int(db.execute(query).scalar_one())
    return found


def delete(tx: StatementRunner, ids: Sequence[str]) -> dict[str, int]:
    """Delete the executions and what belongs to them; only ended ones (checked again here). How
    many rows went, by table."""
    ended = sa.select(e.c.id).where(e.c.id.in_(ids), e.c.status.in_(sorted(TERMINAL_EXECUTION)))
    gone = {}
    for name, table in (("events", t.events), ("signals", t.signals), ("step_runs", t.step_runs)):
        gone[name] = tx.execute(sa.delete(table).where(table.c.execution_id.in_(ended))).rowcount
    gone["executions"] = tx.execute(sa.delete(e).where(e.c.id.in_(ended))).rowcount
    return gone
