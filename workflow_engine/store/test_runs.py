"""The runs of a registered version's own test cases, kept for `GET /testing/runs/{id}`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from workflow_engine.store import schema as t
from workflow_engine.store.records import from_row
from workflow_engine.store.transaction import Tx


@dataclass(frozen=True, slots=True)
class TestRunRecord:
    __test__ = False  # (not a test class)

    id: int
    workflow_id: int
    workflow_name: str
    workflow_version: str
    owner_id: int
    passed: int
    failed: int
    cases: list[dict[str, Any]]
    seconds: float
    created_at: datetime


def save(tx: Tx, values: Mapping[str, Any]) -> TestRunRecord:
    r = t.test_runs
    row = tx.execute(sa.insert(r).values({**values, "created_at": tx.now}).returning(*r.c)).one()
    return from_row(TestRunRecord, row)


def get(tx: Tx, run_id: int, owner_id: int | None = None) -> TestRunRecord | None:
    """The run ``run_id`` (only if ``owner_id``'s, when given)."""
    r = t.test_runs
    query = sa.select(r).where(r.c.id == run_id)
    if owner_id is not None:
        query = query.where(r.c.owner_id == owner_id)
    row = tx.execute(query).first()
    return None if row is None else from_row(TestRunRecord, row)
