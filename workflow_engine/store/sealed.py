"""The stored values that may hold sealed secrets, read and rewritten in batches: what
`wfe keys rotate` goes through."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import sqlalchemy as sa

from workflow_engine.core.secrets import SEALED
from workflow_engine.store import schema as t
from workflow_engine.store.repository import Store

# each table with the JSON columns a sealed value can be in, by its key column
COLUMNS: tuple[tuple[sa.Table, str, tuple[str, ...]], ...] = (
    (t.executions, "id", ("input", "output", "checkpoint")),
    (t.step_runs, "id", ("input", "output", "checkpoint", "item")),
    (t.signals, "id", ("data",)),
    (t.schedules, "name", ("input",)),
)
BATCH = 500


def rewrite(
    store: Store, change: Callable[[Any], tuple[Any, bool]], batch: int = BATCH
) -> Iterator[tuple[str, int]]:
    """Rewrite every stored value holding a sealed secret with ``change`` (the new value, and
    whether it changed), a batch of rows per transaction; yields (table, rows rewritten) after
    each batch. Stopped at any point, it can be run again: ``change`` leaves alone what it
    did already."""
    for table, key, names in COLUMNS:
        columns = [table.c[name] for name in names]
        holding = sa.or_(*(sa.cast(column, sa.Text).like(f'%"{SEALED}"%') for column in columns))
        after: Any = None
        while True:
            query = sa.select(table.c[key], *columns).where(holding).order_by(table.c[key]).limit(batch)
            if after is not None:
                query = query.where(table.c[key] > after)
            with store.engine.begin() as conn:
                rows = conn.execute(query).all()
                changed = 0
                for row in rows:
                    values = {}
                    for name in names:
                        value, moved = change(getattr(row, name))
                        if moved:
                            values[name] = value
                    if values:
                        conn.execute(sa.update(table).where(table.c[key] == row[0]).values(values))
                        changed += 1
            if rows:
                after = rows[-1][0]
                yield table.name, changed
            if len(rows) < batch:
                break
