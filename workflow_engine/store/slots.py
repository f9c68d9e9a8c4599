"""Concurrency slots in the database: the executions that hold a key's slots (started, not
ended) and those waiting for one (initialized), counted on the transaction that decides.

Callers hold the key (``Tx.serialize``) while they count and start, so that two coordinators
never both take the last slot.
"""

from __future__ import annotations

import sqlalchemy as sa

from workflow_engine.core.states import TERMINAL_EXECUTION, ExecutionStatus
from workflow_engine.store import schema as t
from workflow_engine.store.database import StatementRunner

e = t.executions
QUEUED = ExecutionStatus.INITIALIZED
HOLDING = tuple(sorted(set(ExecutionStatus) - TERMINAL_EXECUTION - {QUEUED}))


def taken(db: StatementRunner, key: str, limit: int, besides: str) -> list[tuple[str, str]]:
    """Up to ``limit`` executions that hold or wait for ``key``'s slots, but for ``besides``,
    oldest first: (id, status) each."""
    query = (
        sa.select(e.c.id, e.c.status)
        .where(e.c.concurrency_key == key, e.c.status.in_((*HOLDING, QUEUED)), e.c.id != besides)
        .order_by(e.c.created_at, e.c.id)
        .limit(limit)
    )
    return [(str(row.id), str(row.status)) for row in db.execute(query)]


def holders(db: StatementRunner, key: str) -> list[str]:
    """The executions holding ``key``'s slots, oldest first."""
    query = (
        sa.select(e.c.id)
        .where(e.c.concurrency_key == key, e.c.status.in_(HOLDING))
        .order_by(e.c.created_at, e.c.id)
    )
    return [str(row.id) for row in db.execute(query)]


def queued(db: StatementRunner, key: str, limit: int) -> list[str]:
    """The executions waiting for one of ``key``'s slots, oldest first."""
    query = (
        sa.select(e.c.id)
        .where(e.c.concurrency_key == key, e.c.status == QUEUED)
        .order_by(e.c.created_at, e.c.id)
        .limit(limit)
    )
    return [str(row.id) for row in db.execute(query)]


def any_queued(db: StatementRunner, key: str) -> bool:
    query = sa.select(e.c.id).where(e.c.concurrency_key == key, e.c.status == QUEUED).limit(1)
    return db.execute(query).first() is not None


def waiting_keys(db: StatementRunner, limit: int = 1000) -> list[str]:
    """Keys with executions waiting for a slot (the reconciler starts them if slots are free)."""
    query = (
        sa.select(e.c.concurrency_key)
        .where(e.c.concurrency_key.is_not(None), e.c.status == QUEUED)
        .group_by(e.c.concurrency_key)
        .limit(limit)
    )
    return [str(row.concurrency_key) for row in db.execute(query)]
