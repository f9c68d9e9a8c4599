"""Executions listed by filter: the pages of `GET /executions`, the monitor's list (keyset
pages, text search) and the executions a bulk action matches."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from workflow_engine.store import schema as t
from workflow_engine.store.records import ExecutionRecord, from_row

e = t.executions


@dataclass(frozen=True)
class ExecutionQuery:
    """Filters for listing executions; ``owner_id`` None means every owner."""

    owner_id: int | None = None
    workflow: str | None = None
    status: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    parent: str | None = None  # the children of this execution
    ids: tuple[str, ...] | None = None  # only these
    text: str | None = None  # an id starting with it, or a workflow name containing it
    after: tuple[datetime, str] | None = None  # keyset: those listed after (created_at, id)
    limit: int = 100
    offset: int = 0


def page(conn: Connection, query: ExecutionQuery, count: bool = True) -> tuple[list[ExecutionRecord], int]:
    """A page of executions, newest first, and how many match in all (-1 unless ``count``)."""
    conditions = _conditions(query)
    ordered = (
        sa.select(e)
        .where(*conditions)
        .order_by(e.c.created_at.desc(), e.c.id.desc())
        .limit(query.limit)
        .offset(query.offset)
    )
    records = [from_row(ExecutionRecord, row) for row in conn.execute(ordered)]
    if not count:
        return records, -1
    return records, int(
        conn.execute(sa.select(sa.func.count()).select_from(e).where(*conditions)).scalar_one()
    )


def ids_starting_with(
    conn: Connection, prefix: str, owner_id: int | None = None, limit: int = 2
) -> list[str]:
    """Up to ``limit`` ids of executions that start with ``prefix`` (of ``owner_id``'s, if
    given), in order. Ids are lowercase UUIDs: the range a prefix of hex digits and dashes
    spans is read through the primary key's index under any collation (``g`` sorts after every
    character an id holds), and ``LIKE`` keeps only the ids that truly start with it."""
    conditions = [e.c.id >= prefix, e.c.id < prefix + "g", e.c.id.like(f"{prefix}%")]
    if owner_id is not None:
        conditions.append(e.c.owner_id == owner_id)
    query = sa.select(e.c.id).where(*conditions).order_by(e.c.id).limit(limit)
    return [str(row.id) for row in conn.execute(query)]


def matching(conn: Connection, query: ExecutionQuery, limit: int) -> list[tuple[str, str]]:
    """Up to ``limit`` executions the query's filters match, oldest first: (id, status)."""
    ordered = sa.select(e.c.id, e.c.status).where(*_conditions(query)).order_by(e.c.created_at, e.c.id)
    return [(str(row.id), str(row.status)) for row in conn.execute(ordered.limit(limit))]


def _conditions(query: ExecutionQuery) -> list[sa.ColumnElement[bool]]:
    conditions: list[sa.ColumnElement[bool]] = []
    if query.owner_id is not None:
        conditions.append(e.c.owner_id == query.owner_id)
    if query.workflow is not None:
        conditions.append(e.c.workflow_name == query.workflow)
    if query.status is not None:
        conditions.append(e.c.status == query.status)
    if query.created_after is not None:
        conditions.append(e.c.created_at >= query.created_after)
    if query.created_before is not None:
        conditions.append(e.c.created_at < query.created_before)
    if query.parent is not None:
        conditions.append(e.c.parent_execution_id == query.parent)
    if query.ids is not None:
        conditions.append(e.c.id.in_(query.ids))
    if query.text:
        pattern = query.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        conditions.append(
            sa.or_(
                e.c.id.like(f"{pattern}%", escape="\\"),
                e.c.workflow_name.like(f"%{pattern}%", escape="\\"),
            )
        )
    if query.after is not None:
        created, last_id = query.after
        conditions.append(
            sa.or_(e.c.created_at < created, sa.and_(e.c.created_at == created, e.c.id < last_id))
        )
    return conditions
