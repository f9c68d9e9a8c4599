"""One top-level start makes at most WFE_MAX_DESCENDANTS child executions in all, on every way a
child starts (the transaction, and the one statement of PostgreSQL), on every store."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from tests.support.harness import Harness
from workflow_engine.core import descendants
from workflow_engine.definitions import WorkflowBuilder
from workflow_engine.store import schema as t


@pytest.fixture
def small(database_url: str) -> Iterator[Harness]:
    harness = Harness(database_url, max_descendants=6)
    try:
        yield harness
    finally:
        harness.close()


def executions(harness: Harness) -> int:
    with harness.store.reading() as connection:
        return int(connection.execute(sa.select(sa.func.count()).select_from(t.executions)).scalar_one())


def refusals(harness: Harness) -> list[str]:
    with harness.store.reading() as connection:
        r = t.step_runs
        query = sa.select(r.c.error_message, r.c.error_code).where(r.c.error_type == descendants.KIND)
        found = connection.execute(query).all()
    assert all(row.error_code == descendants.CODE for row in found)
    return [str(row.error_message) for row in found]


def mutual(harness: Harness) -> None:
    """ping 2.0.0 maps over its items with pong, and pong with ping (the latest: 2.0.0)."""
    harness.register(WorkflowBuilder("ping", version="1.0.0").agent("leaf", "echo"))
    each = {"items": "input.items"}
    harness.register(WorkflowBuilder("pong").map("each", "input.items", workflow="ping", input=each))
    harness.register(
        WorkflowBuilder("ping", version="2.0.0").map("each", "input.items", workflow="pong", input=each)
    )


def test_maps_that_start_each_other_stop_at_the_descendant_limit(small: Harness) -> None:
    mutual(small)
    view = small.run("ping", input_data={"items": [1, 2]})
    assert view.status == "failed"
    assert executions(small) <= 1 + 6  # (2 items a level and 8 levels: 511 without the limit)
    refused = refusals(small)
    assert refused and all("DESCENDANT_LIMIT" in message for message in refused)
    assert "WFE_MAX_DESCENDANTS" in refused[0] and view.id in refused[0]


@pytest.mark.parametrize(("limit", "status", "children"), [(3, "completed", 3), (2, "failed", 2)])
def test_a_tree_starts_children_up_to_its_allowance_and_not_one_more(
    database_url: str, limit: int, status: str, children: int
) -> None:
    with Harness(database_url, max_descendants=limit) as harness:
        harness.register(WorkflowBuilder("leafy").agent("leaf", "echo"))
        harness.register(WorkflowBuilder("wide").map("each", "input.items", workflow="leafy"))
        view = harness.run("wide", input_data={"items": [1, 2, 3]})
        assert view.status == status
        assert len(harness.store.children(view.id)) == children
        assert bool(refusals(harness)) == (status == "failed")


def test_the_allowance_counts_the_whole_tree_not_each_parent(database_url: str) -> None:
    with Harness(database_url, max_descendants=4) as harness:
        harness.register(WorkflowBuilder("leafy").agent("leaf", "echo"))
        harness.register(WorkflowBuilder("middle").map("each", "input.items", workflow="leafy"))
        harness.register(
            WorkflowBuilder("top").map(
                "each", "input.items", workflow="middle", input={"items": "input.items"}
            )
        )
        # 2 middles with 2 leaves each: 6 descendants, more than 4
        view = harness.run("top", input_data={"items": [1, 2]})
        assert view.status == "failed"
        assert executions(harness) <= 1 + 4
        # another top-level start has an allowance of its own
        harness.register(WorkflowBuilder("single").workflow("one", "leafy"))
        assert harness.run("single").status == "completed"


def test_a_workflow_step_beyond_the_allowance_fails_the_execution_with_the_code(database_url: str) -> None:
    with Harness(database_url, max_descendants=0) as harness:
        harness.register(WorkflowBuilder("leafy").agent("leaf", "echo"))
        harness.register(WorkflowBuilder("single").workflow("one", "leafy"))
        view = harness.run("single")
        assert view.status == "failed" and harness.store.children(view.id) == []
        error = harness.record(view.id).error
        assert error is not None and error["code"] == descendants.CODE and error["type"] == descendants.KIND
        assert "WFE_MAX_DESCENDANTS" in error["message"]
