"""The count of child executions started in each tree (:mod:`workflow_engine.core.descendants`),
kept on one row per top-level execution and locked by whoever starts a child in it."""

from __future__ import annotations

import sqlalchemy as sa

from workflow_engine.store import schema as t
from workflow_engine.store.records import ExecutionRecord
from workflow_engine.store.transaction import Tx


def root_of(tx: Tx, execution: ExecutionRecord) -> str:
    """The id of the top-level execution that ``execution`` descends from (itself, if none)."""
    for _ in range(execution.depth + 1):  # (a parent purged meanwhile: the oldest one known)
        if execution.parent_execution_id is None:
            break
        parent = tx.execution(execution.parent_execution_id)
        if parent is None:
            break
        execution = parent
    return execution.id


def hold(tx: Tx, root_id: str, room: int) -> tuple[int, int]:
    """The tree of ``root_id``'s count: children started and its room (``room``, if this is its
    first), its row locked until the transaction ends."""
    lineages = t.lineages
    tx.insert_ignoring_conflicts(
        lineages, {"root_execution_id": root_id, "started": 0, "room": room}, ["root_execution_id"]
    )
    query = sa.select(lineages.c.started, lineages.c.room).where(lineages.c.root_execution_id == root_id)
    row = tx.execute(query.with_for_update()).one()
    return int(row.started), int(row.room)


def count(tx: Tx, root_id: str) -> None:
    """One more child started in the tree of ``root_id`` (its row held: :func:`hold`)."""
    lineages = t.lineages
    tx.execute(
        sa.update(lineages)
        .where(lineages.c.root_execution_id == root_id)
        .values(started=lineages.c.started + 1)
    )
