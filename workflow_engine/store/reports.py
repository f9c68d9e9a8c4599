"""The reads behind the summaries, the task lists and the Prometheus gauges."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from workflow_engine.core.states import StepStatus
from workflow_engine.definitions.model import StepType
from workflow_engine.store import schema as t
from workflow_engine.store.records import ExecutionRecord, StepRunRecord, from_row
from workflow_engine.store.repository import Store

_e, _r = t.executions, t.step_runs


def _owned(owner_id: int | None) -> list[sa.ColumnElement[bool]]:
    return [_e.c.owner_id == owner_id] if owner_id is not None else []


def executions_by_status(
    store: Store, since: Any = None, owner_id: int | None = None, workflow: str | None = None
) -> dict[str, int]:
    """How many executions are in each status (created since ``since``, of ``owner_id``, of
    ``workflow``)."""
    query = (
        sa.select(_e.c.status, sa.func.count())
        .where(*_chosen(since, owner_id, workflow))
        .group_by(_e.c.status)
    )
    with store.reading() as conn:
        return {status: count for status, count in conn.execute(query)}


def executions_by_status_upto(
    store: Store, statuses: list[str], cap: int, owner_id: int | None = None, workflow: str | None = None
) -> dict[str, int]:
    """How many executions are in each of ``statuses``, counted up to ``cap`` + 1 each (a count
    above ``cap`` means "more than ``cap``"): one statement whose cost is bounded by the cap, not
    by the table, so a page that shows the counts costs the same over a million executions."""
    where = _chosen(None, owner_id, workflow)
    counted = [
        sa.select(sa.literal(status).label("status"), sa.func.count().label("n")).select_from(
            sa.select(sa.literal(1)).where(_e.c.status == status, *where).limit(cap + 1).subquery()
        )
        for status in statuses
    ]
    with store.reading() as conn:
        return {status: n for status, n in conn.execute(sa.union_all(*counted)) if n}


def _chosen(since: Any, owner_id: int | None, workflow: str | None) -> list[sa.ColumnElement[bool]]:
    where = [*([_e.c.created_at >= since] if since is not None else []), *_owned(owner_id)]
    if workflow is not None:
        where.append(_e.c.workflow_name == workflow)
    return where


def item_runs(
    store: Store, execution_id: str, maps: list[str], first: int, count: int
) -> list[StepRunRecord]:
    """The attempts of the items ``first`` to ``first + count - 1`` of each of an execution's
    ``maps``, by map and item: a range of the item index, whatever the maps' size."""
    query = (
        sa.select(_r)
        .where(
            _r.c.execution_id == execution_id,
            _r.c.step_name.in_(maps),
            _r.c.item_index >= first,
            _r.c.item_index < first + count,
            _r.c.superseded.is_(False),
        )
        .order_by(_r.c.step_name, _r.c.item_index, _r.c.attempt)
    )
    with store.reading() as conn:
        return [from_row(StepRunRecord, row) for row in conn.execute(query)]


def runs_by_status_and_type(store: Store) -> list[tuple[str, str, int]]:
    query = sa.select(_r.c.status, _r.c.step_type, sa.func.count()).group_by(_r.c.status, _r.c.step_type)
    with store.reading() as conn:
        return [(status, step_type, count) for status, step_type, count in conn.execute(query)]


def run_samples(store: Store, since: Any, owner_id: int | None, limit: int) -> list[tuple[Any, ...]]:
    """(step type, agent, status, duration, error type) of runs queued since ``since``."""
    query = (
        sa.select(_r.c.step_type, _r.c.agent, _r.c.status, _r.c.duration_ms, _r.c.error_type)
        .join(_e, _e.c.id == _r.c.execution_id)
        .where(_r.c.queued_at >= since, *_owned(owner_id))
        .limit(limit)
    )
    with store.reading() as conn:
        return [tuple(row) for row in conn.execute(query)]


def waiting_for_people(
    store: Store,
    owner_id: int | None,
    limit: int,
    at: Sequence[tuple[int, str]] | None = None,
    besides_owner: int | None = None,
) -> list[tuple[StepRunRecord, ExecutionRecord]]:
    """Current runs waiting for a person (every waiting step but a timer or a wait for a
    signal), oldest first, with their executions; ``at``: only the human tasks of these
    (workflow id, step) in executions not of ``besides_owner``."""
    chosen: list[sa.ColumnElement[bool]] = []
    if at is not None:
        places = [sa.and_(_e.c.workflow_id == workflow, _r.c.step_name == step) for workflow, step in at]
        chosen = [
            _r.c.step_type == StepType.HUMAN,
            sa.or_(sa.false(), *places),
            _e.c.owner_id != besides_owner,
        ]
    query = (
        sa.select(_r, *[c.label(f"e_{c.name}") for c in _e.c])
        .join(_e, _e.c.id == _r.c.execution_id)
        .where(
            _r.c.status == StepStatus.WAITING,
            _r.c.superseded.is_(False),
            _r.c.step_type.not_in([StepType.TIMER, StepType.WAIT]),
        )
        .where(*_owned(owner_id), *chosen)
        .order_by(_r.c.queued_at)
        .limit(limit)
    )
    with store.reading() as conn:
        rows = conn.execute(query).all()
    return [
        (from_row(StepRunRecord, row), ExecutionRecord(**{c.name: row._mapping[f"e_{c.name}"] for c in _e.c}))
        for row in rows
    ]


def human_steps_waiting(store: Store, besides_owner: int) -> list[tuple[int, str]]:
    """(workflow id, step) of every human task waiting in an execution not of ``besides_owner``."""
    query = (
        sa.select(_e.c.workflow_id, _r.c.step_name)
        .distinct()
        .join(_e, _e.c.id == _r.c.execution_id)
        .where(
            _r.c.status == StepStatus.WAITING,
            _r.c.superseded.is_(False),
            _r.c.step_type == StepType.HUMAN,
            _e.c.owner_id != besides_owner,
        )
    )
    with store.reading() as conn:
        return [(int(workflow), str(step)) for workflow, step in conn.execute(query)]


def reachable(store: Store) -> None:
    """Raise unless the database answers."""
    with store.reading() as conn:
        conn.execute(sa.text("SELECT 1"))
