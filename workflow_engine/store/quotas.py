"""What the quotas count (see :mod:`workflow_engine.core.quotas`): each a bounded read, one
statement, over an open transaction or a reading connection (both dialects alike)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from workflow_engine.core.quotas import MINUTE, Quotas, StartUsage
from workflow_engine.core.states import TERMINAL_EXECUTION
from workflow_engine.store import schema as t
from workflow_engine.store.database import StatementRunner

x = t.executions
_TERMINAL = sorted(TERMINAL_EXECUTION)


def in_flight_of(owner_id: int) -> sa.ColumnElement[bool]:
    """An owner's executions that have not ended (the partial index ix_wfe_executions_in_flight)."""
    return sa.and_(x.c.owner_id == owner_id, x.c.status.not_in(_TERMINAL))


def usage_columns(owner_id: int, quotas: Quotas, now: datetime) -> tuple[sa.ColumnElement[Any], ...]:
    """What a start counts, as two columns to read with another statement (the workflow's version,
    see Store.workflow_with): an owner's executions not ended (counted up to ``quotas.in_flight``)
    and the start time of its ``quotas.starts_per_minute``-th newest top-level start of the last
    minute (see :func:`usage_of`)."""
    in_flight: sa.ColumnElement[Any] = sa.literal(0)
    if quotas.in_flight:
        counted = sa.select(sa.literal(1)).where(in_flight_of(owner_id)).limit(quotas.in_flight).subquery()
        in_flight = sa.select(sa.func.count()).select_from(counted).correlate(None).scalar_subquery()
    nth: sa.ColumnElement[Any] = sa.null()
    if quotas.starts_per_minute:
        nth = (
            sa.select(x.c.created_at)
            .where(
                x.c.owner_id == owner_id,
                x.c.created_at > now - MINUTE,
                x.c.parent_execution_id.is_(None),
            )
            .order_by(x.c.created_at.desc())
            .limit(1)
            .offset(quotas.starts_per_minute - 1)
            .correlate(None)
            .scalar_subquery()
        )
    return in_flight.label("quota_in_flight"), nth.label("quota_nth_start")


def usage_of(row: Any) -> StartUsage:
    """The usage read by :func:`usage_columns`, from the row that holds them."""
    nth_start = row.quota_nth_start
    if isinstance(nth_start, str):  # (SQLite hands a scalar subquery's timestamp back as text)
        nth_start = x.c.created_at.type.process_result_value(nth_start, None)  # type: ignore[attr-defined]
    return StartUsage(int(row.quota_in_flight or 0), nth_start)


def start_usage(db: StatementRunner, owner_id: int, quotas: Quotas, now: datetime) -> StartUsage:
    """What a start counts (see :func:`usage_columns`), in a read of its own."""
    return usage_of(db.execute(sa.select(*usage_columns(owner_id, quotas, now))).one())


def kept_signals(db: StatementRunner, execution_id: str) -> tuple[int, int]:
    """How many signals an execution keeps (sent, no step took them yet), and their bytes."""
    s = t.signals
    size = sa.func.coalesce(sa.func.sum(sa.func.length(sa.cast(s.c.data, sa.Text))), 0)
    kept = s.c.execution_id == execution_id, s.c.consumed_step.is_(None)
    row = db.execute(sa.select(sa.func.count().label("n"), size.label("size")).where(*kept)).one()
    return int(row.n), int(row.size)


def schedules_of(db: StatementRunner, owner_id: int) -> int:
    """How many schedules an owner has."""
    found = db.execute(sa.select(sa.func.count()).where(t.schedules.c.owner_id == owner_id)).scalar_one()
    return int(found)
