"""The stored values that may hold sealed secrets, read and rewritten in batches (what
`wfe keys rotate` goes through), each with the binding of the row that holds it; and an
execution's owner and tree, which the binding of its values names."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import sqlalchemy as sa

from workflow_engine.core.secrets import SEALED
from workflow_engine.secrets import Binding
from workflow_engine.store import schema as t
from workflow_engine.store.repository import Store

Change = Callable[[Any, Binding], tuple[Any, bool]]
e = t.executions

# each table with the JSON columns a sealed value can be in, by its key column, and the
# columns (joined to its execution, if it is not one) its values' binding is made of
COLUMNS: tuple[tuple[sa.Table, str, tuple[str, ...]], ...] = (
    (t.executions, "id", ("input", "output", "checkpoint")),
    (t.step_runs, "id", ("input", "output", "checkpoint", "item")),
    (t.signals, "id", ("data",)),
    (t.schedules, "name", ("input",)),
)
BATCH = 500
MAX_LEVELS = 64  # (a tree is at most WFE_MAX_WORKFLOW_DEPTH deep: this only stops a loop)


def tree_of(store: Store, execution_id: str) -> tuple[int, str] | None:
    """The owner of ``execution_id`` and the top-level execution of its tree (None: there is
    no such execution)."""
    with store.reading() as conn:
        return _tree(conn, execution_id)


def _tree(conn: Any, execution_id: str) -> tuple[int, str] | None:
    current = execution_id
    for _ in range(MAX_LEVELS):
        query = sa.select(e.c.owner_id, e.c.parent_execution_id).where(e.c.id == current)
        row = conn.execute(query).first()
        if row is None:
            return None
        if row.parent_execution_id is None:
            return int(row.owner_id), current
        current = row.parent_execution_id
    return None


def _binding_columns(table: sa.Table) -> tuple[list[Any], Any]:
    """The columns a row's binding is read from, and the FROM clause."""
    if table is t.schedules:
        return [table.c.owner_id, table.c.name], table
    if table is t.executions:
        return [table.c.owner_id, table.c.id], table
    return [e.c.owner_id, e.c.id.label("bound_to")], table.join(e, e.c.id == table.c.execution_id)


def rewrite(store: Store, change: Change, batch: int = BATCH) -> Iterator[tuple[str, int]]:
    """Rewrite every stored value holding a sealed secret with ``change`` (given the value and
    the binding of the row that holds it: the new value, and whether it changed), a batch of
    rows per transaction; yields (table, rows rewritten) after each batch. Stopped at any
    point, it can be run again: ``change`` leaves alone what it did already."""
    trees: dict[str, tuple[int, str] | None] = {}
    for table, key, names in COLUMNS:
        columns = [table.c[name] for name in names]
        extra, source = _binding_columns(table)
        holding = sa.or_(*(sa.cast(column, sa.Text).like(f'%"{SEALED}"%') for column in columns))
        after: Any = None
        while True:
            query = (
                sa.select(table.c[key], *columns, *extra)
                .select_from(source)
                .where(holding)
                .order_by(table.c[key])
                .limit(batch)
            )
            if after is not None:
                query = query.where(table.c[key] > after)
            with store.engine.begin() as conn:
                rows = conn.execute(query).all()
                changed = 0
                for row in rows:
                    if table is t.schedules:
                        binding = Binding.schedule(row[-2], row[-1])
                    else:  # (a child's values are its tree's)
                        tree = trees.get(row[-1]) or trees.setdefault(row[-1], _tree(conn, row[-1]))
                        if tree is None:
                            continue
                        binding = Binding.execution(*tree)
                    values = {}
                    for index, name in enumerate(names, start=1):
                        value, moved = change(row[index], binding)
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
