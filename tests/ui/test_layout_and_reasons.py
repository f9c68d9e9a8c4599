"""The monitor's pure parts: the DAG's layout (layers, order, folding of wide fan-outs), the
sentence saying why a step is not running, the critical path, and a task form's data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from workflow_engine.core.graph import Edge, Graph
from workflow_engine.definitions import WorkflowBuilder
from workflow_engine.definitions.model import StepDefinition
from workflow_engine.reasons import Situation, why, why_item
from workflow_engine.store.records import StepRunRecord
from workflow_engine.ui import dag, pages
from workflow_engine.views import StepView

pytestmark = pytest.mark.unit
NOW = datetime(2030, 1, 1, tzinfo=UTC)


def graph(steps: list[str], edges: list[tuple[str, str]]) -> Graph:
    return Graph(steps, [Edge(a, b) for a, b in edges])


def test_layers_follow_the_longest_path_and_nodes_never_overlap() -> None:
    laid = dag.layout(
        graph(["a", "b", "c", "d"], [("a", "b"), ("b", "d"), ("a", "c"), ("c", "d"), ("a", "d")])
    )
    layer = {node.key: node.layer for node in laid.nodes}
    assert layer == {"a": 0, "b": 1, "c": 1, "d": 2}
    boxes = {(node.x, node.y) for node in laid.nodes}
    assert len(boxes) == 4
    assert all(node.x + dag.WIDTH <= laid.width and node.y + dag.HEIGHT <= laid.height for node in laid.nodes)
    assert set(laid.edges) == {("a", "b"), ("b", "d"), ("a", "c"), ("c", "d"), ("a", "d")}


def test_a_fan_out_wider_than_the_fold_is_one_node_and_a_narrow_one_is_not() -> None:
    wide = [f"w{i}" for i in range(dag.FOLD_AT + 1)]
    laid = dag.layout(graph(["a", *wide, "z"], [("a", w) for w in wide] + [(w, "z") for w in wide]))
    assert [node.key for node in laid.nodes] == ["a", "fold:w0", "z"]
    assert laid.nodes[1].steps == tuple(wide) and laid.nodes[1].folded
    assert set(laid.edges) == {("a", "fold:w0"), ("fold:w0", "z")}
    narrow = [f"n{i}" for i in range(dag.FOLD_AT)]
    shown = dag.layout(graph(["a", *narrow], [("a", n) for n in narrow]))
    assert len(shown.nodes) == 1 + dag.FOLD_AT


def test_a_layer_is_ordered_by_where_its_predecessors_sit() -> None:
    laid = dag.layout(graph(["p", "q", "y", "x"], [("p", "x"), ("q", "y")]))
    at = {node.key: node.y for node in laid.nodes}
    assert at["x"] < at["y"]  # x follows p, the first of its layer


def step(**fields: Any) -> StepDefinition:
    values = {"name": "s", "agent": "a", **fields}
    return StepDefinition.model_validate({k: v for k, v in values.items() if v is not None})


def run(**fields: Any) -> StepRunRecord:
    values: dict[str, Any] = dict(
        id=1,
        execution_id="e",
        step_name="s",
        step_type="agent",
        agent="a",
        attempt=1,
        status="queued",
        superseded=False,
        timeout=None,
        input=None,
        output=None,
        error_type=None,
        error_message=None,
        error_code=None,
        worker=None,
        task_id=None,
        checkpoint=None,
        completed_by=None,
        queued_at=NOW,
        not_before=None,
        published_at=None,
        started_at=None,
        heartbeat_at=None,
        deadline_at=None,
        finished_at=None,
        duration_ms=None,
    )
    values.update(fields)
    return StepRunRecord(**values)


def situation(
    statuses: dict[str, str], execution: str = "running", queues: set[str] | None = None
) -> Situation:
    return Situation(execution, None, statuses, queues, "wfe.steps", NOW)


G = graph(["up", "s"], [("up", "s")])


@pytest.mark.parametrize(
    ("definition", "latest", "statuses", "execution", "queues", "expected"),
    [
        (step(), None, {"up": "running", "s": "pending"}, "running", None, "waits for 'up' to finish"),
        (step(), None, {"up": "succeeded", "s": "pending"}, "paused", None, "the execution is paused"),
        (
            step(queue="gpu"),
            run(),
            {"up": "succeeded", "s": "queued"},
            "running",
            {"wfe.steps"},
            "queued on gpu, which no live worker consumes",
        ),
        (
            step(),
            run(),
            {"up": "succeeded", "s": "queued"},
            "running",
            {"wfe.steps"},
            "queued on wfe.steps, waiting for a free worker",
        ),
        (
            step(rate_limit="10/m"),
            run(not_before=NOW + timedelta(seconds=6)),
            {"s": "queued"},
            "running",
            None,
            "held by its rate limit (10/m); it may start in 6 s",
        ),
        (
            step(),
            run(
                status="retrying",
                not_before=NOW + timedelta(seconds=4),
                error_type="TimeoutError",
                error_message="slow",
            ),
            {"s": "retrying"},
            "running",
            None,
            "waits to retry after TimeoutError: slow; the next attempt starts in 4 s",
        ),
        (
            step(type="human", agent=None, assignees=["ann"]),
            run(status="waiting"),
            {"s": "waiting"},
            "waiting",
            None,
            "waits for ann to complete it",
        ),
        (
            step(type="wait", agent=None, signal="paid"),
            run(status="waiting"),
            {"s": "waiting"},
            "waiting",
            None,
            "waits for the signal 'paid'",
        ),
        (
            step(),
            run(status="waiting", error_type="ValidationError", error_message="bad"),
            {"s": "waiting"},
            "waiting",
            None,
            "waits for a fix after ValidationError: bad",
        ),
        (step(), run(status="running"), {"s": "running"}, "running", None, None),
        (step(), None, {"up": "failed", "s": "pending"}, "failed", None, "waits for 'up' to finish"),
    ],
)
def test_why_a_step_is_not_running(
    definition: StepDefinition,
    latest: StepRunRecord | None,
    statuses: dict[str, str],
    execution: str,
    queues: set[str] | None,
    expected: str | None,
) -> None:
    sentence = why(definition, latest, G, situation(statuses, execution, queues))
    if expected is None:
        assert sentence is None
    else:
        assert sentence is not None and sentence.startswith(expected), sentence


def test_why_a_map_item_is_not_running() -> None:
    capped = step(type="map", agent="a", items="steps.up.items", max_concurrency=4)
    mapped = step(type="map", agent="a", items="steps.up.items")
    here = situation({"s": "running"})
    held = run(status="pending", item_index=7)
    assert why_item(capped, held, here) == "waits for a place in the map's window: 4 items at a time"
    assert why_item(mapped, held, here) == "about to be queued"
    again = run(status="retrying", item_index=7, error_type="IOError", error_message="reset", not_before=NOW)
    assert why_item(capped, again, here) == (
        "waits to retry after IOError: reset; the next attempt starts now (due 2030-01-01 00:00:00 UTC)"
    )
    assert (
        why_item(capped, held, situation({"s": "running"}, "paused"))
        == "the execution is paused; resume it to go on"
    )
    assert why_item(capped, run(status="running", item_index=7), here) is None
    assert (
        why_item(capped, held, situation({"s": "failed"}, "failed")) == "never started: the execution failed"
    )


def test_the_critical_path_runs_back_from_the_last_to_finish_through_what_held_each_up() -> None:
    g = graph(["a", "fast", "slow", "z"], [("a", "fast"), ("a", "slow"), ("fast", "z"), ("slow", "z")])
    done = {
        name: run(id=i, step_name=name, status="succeeded", finished_at=NOW + timedelta(seconds=t))
        for i, (name, t) in enumerate([("a", 1), ("fast", 2), ("slow", 9), ("z", 10)])
    }
    assert pages.critical_path(g, done) == {0, 2, 3}


def test_a_task_form_is_built_from_the_schema_and_its_values_are_typed_or_refused() -> None:
    schema = {
        "type": "object",
        "required": ["amount"],
        "properties": {"amount": {"type": "integer"}, "ok": {"type": "boolean"}, "tags": {"type": "array"}},
    }
    fields = pages.form_fields(schema)
    assert [(f["name"], f["kind"], f["required"]) for f in fields] == [
        ("amount", "integer", True),
        ("ok", "boolean", False),
        ("tags", "json", False),
    ]
    assert pages.form_data(fields, {"amount": "4", "ok": "on", "tags": '["x"]'}) == (
        {"amount": 4, "ok": True, "tags": ["x"]},
        None,
    )
    assert pages.form_data(fields, {"amount": "four"})[1] == "amount: not a valid integer"
    whole = pages.form_fields(None)
    assert pages.form_data(whole, {"__json__": '{"a": 1}'}) == ({"a": 1}, None)
    assert pages.form_data(whole, {"__json__": "[1]"})[1] == "the data must be a JSON object"


def test_a_folded_node_shows_its_most_urgent_members_status_and_their_histogram() -> None:
    builder = WorkflowBuilder("wide").agent("a")
    for index in range(60):
        builder = builder.agent(f"w{index}", "a", after="a")
    definition = builder.build()
    laid = dag.layout(definition.graph)
    (folded,) = [node for node in laid.nodes if node.folded]
    statuses = {"a": "succeeded", **{f"w{i}": "succeeded" if i < 50 else "running" for i in range(60)}}
    statuses["w3"] = "failed"
    views = {name: StepView(name, "agent", status, 1, None, None) for name, status in statuses.items()}
    node = pages._node(folded, views, definition)
    assert node.status == "failed" and node.histogram == {"succeeded": 49, "running": 10, "failed": 1}


def test_a_large_workflows_steps_are_paged_with_the_unsettled_first() -> None:
    names = [f"s{i}" for i in range(450)]
    views = [
        StepView(n, "agent", "running" if n in ("s300", "s7") else "pending", 0, None, None) for n in names
    ]
    first, pages_count = pages.step_page(views, 0)
    assert pages_count == 5 and len(first) == pages.STEPS_PAGE
    assert [s.name for s in first[:3]] == ["s7", "s300", "s0"]
    last, _ = pages.step_page(views, 99)  # (past the end: the last page)
    assert [s.name for s in last] == names[400:]  # (s7 and s300 came first)
    small = views[:150]
    assert pages.step_page(small, 3) == (small, 1)
