"""How a list of executions learns that some of them changed, for one owner: the newest event of
the owner's executions, never a number drawn from anyone else's (the monitor's live list shows
a user who is not an admin nothing about others' work, not even how busy the engine is)."""

from __future__ import annotations

import sqlalchemy as sa

from workflow_engine.store import schema as t
from workflow_engine.store.database import StatementRunner

e, x = t.events, t.executions


def newest_event(db: StatementRunner, owner_id: int) -> int:
    """The id of the newest event of ``owner_id``'s executions (0: none): one index probe per
    execution of theirs."""
    per_execution = sa.select(sa.func.max(e.c.id)).where(e.c.execution_id == x.c.id).scalar_subquery()
    found = db.execute(sa.select(sa.func.max(per_execution)).where(x.c.owner_id == owner_id)).scalar()
    return int(found or 0)


def changed_since(db: StatementRunner, owner_id: int, mark: int) -> tuple[int, int | None]:
    """The newest event id of all (the next ``mark``: never shown to the owner) and the newest of
    ``owner_id``'s executions after ``mark`` (None: none), in one read of the events after it."""
    top = sa.select(sa.func.coalesce(sa.func.max(e.c.id), 0)).scalar_subquery()
    mine = (
        sa.select(e.c.id)
        .join(x, x.c.id == e.c.execution_id)
        .where(e.c.id > mark, x.c.owner_id == owner_id)
        .order_by(e.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    row = db.execute(sa.select(top.label("top"), mine.label("mine"))).one()
    return int(row.top), (int(row.mine) if row.mine is not None else None)
