"""A run stores only its own input: every attempt of a chain, a fan-out or a map without
``input:`` is given its execution's input, and its row holds NULL instead of a copy, whichever
way it reaches a worker (by message, in place, carried), on every store. Logs still show each
attempt's input."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from tests.support.harness import Harness, fan
from workflow_engine.agents import AgentContext
from workflow_engine.definitions import WorkflowBuilder
from workflow_engine.engine import Engine
from workflow_engine.store import schema as t

LARGE = {"blob": "x" * 100_000, "customer": "ann"}


def stored_inputs(harness: Harness, execution_id: str) -> list[tuple[str, int | None, Any]]:
    r = t.step_runs
    query = sa.select(r.c.step_name, r.c.item_index, r.c.input).where(r.c.execution_id == execution_id)
    with harness.store.reading() as conn:
        return [(row.step_name, row.item_index, row.input) for row in conn.execute(query)]


def given(harness: Harness, *names: str) -> list[tuple[str, int | None, Any]]:
    """Agents ``names`` that note the input they were given."""
    seen: list[tuple[str, int | None, Any]] = []

    def agent(ctx: AgentContext) -> dict[str, Any]:
        seen.append((ctx.step_name, ctx.index, ctx.input))
        return {"items": [1, 2, 3, 4, 5]} if ctx.step_name == "source" else {"step": ctx.step_name}

    for name in names:
        harness.agent(name, agent)
    return seen


def logged_inputs(harness: Harness, execution_id: str) -> list[Any]:
    engine = Engine(harness.settings, harness.store, dispatcher=harness.broker)
    return [entry["input_data"] for entry in engine.logs(execution_id, limit=1000)]


def workers(harness: Harness, count: int) -> None:
    for index in range(count):
        harness.store.beat(f"host:{index}", "host", index, ["work"], [harness.settings.steps_queue], [])


@pytest.fixture(params=[0, 50], ids=["by message", "in place"])
def delivered(harness: Harness, request: pytest.FixtureRequest) -> Harness:
    workers(harness, 2)  # (fewer than a fan-out's branches: the others are carried)
    harness.inline_steps = request.param
    return harness


def test_no_run_of_a_chain_a_fan_out_or_a_map_stores_its_executions_input(delivered: Harness) -> None:
    harness = delivered
    seen = given(harness, "a", "b", "c", "start", "b0", "b1", "b2", "b3", "join", "source", "item", "after")
    harness.register(WorkflowBuilder("chain").agent("a").agent("b", after="a").agent("c", after="b"))
    harness.register(fan("wide", 4))
    harness.register(
        WorkflowBuilder("mapped")
        .agent("source")
        .map("each", "steps.source.items", agent="item", after="source")
        .agent("after", after="each")
    )
    for workflow, agents in (("chain", 3), ("wide", 6), ("mapped", 7)):
        seen.clear()
        view = harness.run(workflow, input_data=LARGE)
        assert view.status == "completed"
        assert len(seen) == agents and all(given == LARGE for _, _, given in seen)
        stored = stored_inputs(harness, view.id)
        assert len(stored) >= agents and all(value is None for _, _, value in stored), stored
        assert logged_inputs(harness, view.id).count(LARGE) == agents  # (each agent's attempt)


def test_a_step_after_a_map_with_its_own_inputs_gets_the_executions_input(delivered: Harness) -> None:
    harness = delivered
    seen = given(harness, "source", "item", "after")
    harness.register(
        WorkflowBuilder("mapped")
        .agent("source")
        .map("each", "steps.source.items", agent="item", after="source", input={"n": "item"})
        .agent("after", after="each")
    )
    view = harness.run("mapped", input_data=LARGE)
    assert view.status == "completed"
    assert sorted((i, given) for name, i, given in seen if name == "each") == [
        (i, {"n": i + 1}) for i in range(5)
    ]
    assert [given for name, _, given in seen if name != "each"] == [LARGE, LARGE]
    stored = {(name, index): value for name, index, value in stored_inputs(harness, view.id)}
    assert stored[("after", None)] is None and stored[("source", None)] is None
    assert [stored[("each", i)] for i in range(5)] == [{"n": i + 1} for i in range(5)]  # their own
