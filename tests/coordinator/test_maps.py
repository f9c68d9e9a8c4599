"""Map steps decided by the coordinator, driven in-process on every store: items, their order,
their admission, their failures, and the verbs on an execution that maps."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.harness import Harness, fails_first
from workflow_engine.agents import AgentContext
from workflow_engine.definitions import WorkflowBuilder
from workflow_engine.errors import FatalError, TransientError, ValidationError


def mapped(name: str = "mapped", **options: Any) -> WorkflowBuilder:
    """source (gives ``items``) → each (a map over them with agent ``item``) → after."""
    items = options.pop("items", "steps.source.items")
    return (
        WorkflowBuilder(name)
        .agent("source")
        .map("each", items, agent="item", after="source", **options)
        .agent("after", after="each")
    )


def given_items(harness: Harness, items: Any) -> None:
    harness.agent("source", lambda ctx: {"items": items})


def item_runs(harness: Harness, execution_id: str) -> list[tuple[int | None, int, str]]:
    return sorted(
        (run.item_index, run.attempt, run.status)
        for run in harness.runs(execution_id, "each")
        if run.item_index is not None
    )


def test_each_item_runs_once_and_the_results_keep_item_order(harness: Harness) -> None:
    given_items(harness, ["intro", "risks", "plan"])
    seen: list[tuple[Any, Any, Any]] = []

    def item(ctx: AgentContext) -> dict[str, Any]:
        seen.append((ctx.index, ctx.item, ctx.input))
        return {"text": f"{ctx.input['section']}-{ctx.input['position']}"}

    harness.agent("item", item)
    harness.register(mapped(input={"section": "item", "position": "index + 1"}))
    view = harness.run("mapped", input_data={"doc": "d"})
    assert view.status == "completed"
    each = harness.view(view.id).steps[1]
    assert each.output == {
        "results": [{"text": "intro-1"}, {"text": "risks-2"}, {"text": "plan-3"}],
        "failed": [],
    }
    assert each.items == {"total": 3, "done": 3, "failed": 0, "running": 0, "pending": 0, "cancelled": 0}
    assert sorted(seen) == [
        (0, "intro", {"section": "intro", "position": 1}),
        (1, "risks", {"section": "risks", "position": 2}),
        (2, "plan", {"section": "plan", "position": 3}),
    ]
    assert item_runs(harness, view.id) == [(0, 1, "succeeded"), (1, 1, "succeeded"), (2, 1, "succeeded")]


def test_without_an_input_mapping_an_item_gets_the_executions_input(harness: Harness) -> None:
    given_items(harness, [10, 20])
    harness.agent("item", lambda ctx: {"got": ctx.input, "item": ctx.item})
    harness.register(mapped())
    view = harness.run("mapped", input_data={"k": "v"})
    assert harness.view(view.id).steps[1].output["results"] == [
        {"got": {"k": "v"}, "item": 10},
        {"got": {"k": "v"}, "item": 20},
    ]


def test_an_empty_list_succeeds_at_once(harness: Harness) -> None:
    given_items(harness, [])
    harness.register(mapped())
    view = harness.run("mapped")
    assert view.status == "completed"
    assert harness.view(view.id).steps[1].output == {"results": [], "failed": []}
    assert not any(name == "item" for name, _ in harness.calls)


@pytest.mark.parametrize(
    ("items", "message"),
    [({"not": "a list"}, "items gave dict, not a list"), (list(range(4)), "more than the 3 allowed")],
)
def test_items_that_are_not_a_list_of_allowed_length_fail_the_step_before_any_runs(
    database_url: str, items: Any, message: str
) -> None:
    harness = Harness(database_url, map_max_items=3)
    try:
        given_items(harness, items)
        harness.register(mapped())
        view = harness.run("mapped")
        assert view.status == "failed"
        assert view.error is not None
        assert view.error["step"] == "each" and message in view.error["message"]
        assert item_runs(harness, view.id) == []
        assert not any(name == "item" for name, _ in harness.calls)
    finally:
        harness.close()


def test_at_most_max_concurrency_items_are_queued_or_running_at_once(harness: Harness) -> None:
    given_items(harness, list(range(7)))
    harness.register(mapped(max_concurrency=2))
    record = harness.start("mapped")
    peak = 0
    while harness.deliver_one():
        admitted = [
            r
            for r in harness.runs(record.id, "each")
            if r.item_index is not None and r.status in ("queued", "running", "retrying")
        ]
        peak = max(peak, len(admitted))
        assert len(admitted) <= 2
    assert peak == 2
    assert harness.view(record.id).status == "completed"
    assert item_runs(harness, record.id) == [(i, 1, "succeeded") for i in range(7)]


def test_an_item_is_retried_on_its_own_under_the_steps_policy(harness: Harness) -> None:
    given_items(harness, ["a", "b", "c"])

    def item(ctx: AgentContext) -> dict[str, Any]:
        if ctx.index == 1 and ctx.attempt < 3:
            raise TransientError("flaky")
        return {"i": ctx.index, "key": ctx.idempotency_key.rsplit(":", 1)[-1]}

    harness.agent("item", item)
    harness.register(mapped(retry={"max_attempts": 3, "initial_delay": 1}))
    view = harness.run("mapped")
    assert view.status == "completed"
    assert item_runs(harness, view.id) == [
        (0, 1, "succeeded"),
        (1, 1, "failed"),
        (1, 2, "failed"),
        (1, 3, "succeeded"),
        (2, 1, "succeeded"),
    ]
    results = harness.view(view.id).steps[1].output["results"]
    assert [r["key"] for r in results] == ["each[0]", "each[1]", "each[2]"]  # one key per item


def test_failures_within_the_tolerance_leave_null_results_and_their_indices(harness: Harness) -> None:
    given_items(harness, list(range(10)))

    def item(ctx: AgentContext) -> dict[str, Any]:
        if ctx.index in (3, 7):
            raise FatalError(f"bad {ctx.index}")
        return {"i": ctx.index}

    harness.agent("item", item)
    harness.register(mapped(tolerated_failures="20%"))
    view = harness.run("mapped")
    assert view.status == "completed"
    output = harness.view(view.id).steps[1].output
    assert output["failed"] == [3, 7]
    assert output["results"][3] is None and output["results"][4] == {"i": 4}


def test_one_failure_too_many_fails_the_step_at_once_and_stops_the_other_items(harness: Harness) -> None:
    given_items(harness, list(range(6)))

    def item(ctx: AgentContext) -> dict[str, Any]:
        if ctx.index == 0:
            raise ValidationError("item 0 is wrong")  # an item cannot wait for a fix: it fails
        return {}

    harness.agent("item", item)
    harness.register(mapped(max_concurrency=2))
    view = harness.run("mapped")
    assert view.status == "failed"
    assert view.error is not None and view.error["type"] == "map_failed"
    assert "1 of 6 items failed (tolerated: 0); item 0: item 0 is wrong" in view.error["message"]
    statuses = [status for _, _, status in item_runs(harness, view.id)]
    assert statuses.count("failed") == 1
    assert "pending" not in statuses and "queued" not in statuses
    assert harness.statuses(view.id)["after"] == "pending"  # never ran


def test_an_optional_map_that_fails_lets_the_workflow_go_on(harness: Harness) -> None:
    given_items(harness, [1])

    def item(ctx: AgentContext) -> dict[str, Any]:
        raise FatalError("no")

    harness.agent("item", item)
    harness.register(mapped(required=False))
    view = harness.run("mapped")
    assert view.status == "completed"
    assert harness.statuses(view.id) == {"source": "succeeded", "each": "failed", "after": "succeeded"}


def test_a_paused_map_admits_nothing_and_resumes_within_its_window(harness: Harness) -> None:
    given_items(harness, list(range(5)))
    harness.register(mapped(max_concurrency=2))
    record = harness.start("mapped")
    harness.deliver_one()  # source: the map opens, two items queued
    harness.coordinator.pause(record.id, "op")
    harness.work()  # the queued messages find their runs held
    assert harness.view(record.id).status == "paused"
    assert [s for _, _, s in item_runs(harness, record.id)] == ["pending"] * 5
    assert harness.view(record.id).steps[1].items == {
        "total": 5,
        "done": 0,
        "failed": 0,
        "running": 0,
        "pending": 5,
        "cancelled": 0,
    }
    harness.coordinator.resume(record.id, "op")
    assert sum(r.status == "queued" for r in harness.runs(record.id, "each")) == 2
    harness.work()
    assert harness.view(record.id).status == "completed"


def test_cancelling_an_execution_stops_its_items(harness: Harness) -> None:
    given_items(harness, list(range(4)))
    harness.register(mapped(max_concurrency=2))
    record = harness.start("mapped")
    harness.deliver_one()
    harness.coordinator.cancel(record.id, "op", reason="enough")
    harness.work()
    assert harness.view(record.id).status == "cancelled"
    assert {s for _, _, s in item_runs(harness, record.id)} == {"cancelled"}
    assert not any(name == "item" for name, _ in harness.calls)


def test_retrying_a_failed_map_runs_only_its_items_that_did_not_succeed(harness: Harness) -> None:
    given_items(harness, ["x", "y", "z"])
    broken = {"on": True}
    ran: list[int] = []

    def item(ctx: AgentContext) -> dict[str, Any]:
        ran.append(ctx.index)
        if broken["on"] and ctx.index == 1:
            raise FatalError("down")
        return {"item": ctx.item}

    harness.agent("item", item)
    harness.register(mapped(max_concurrency=1))  # item 2 never starts: cancelled with the map
    view = harness.run("mapped")
    assert view.status == "failed" and ran == [0, 1]
    broken["on"] = False
    assert harness.coordinator.retry(view.id, "op") == ["each"]
    harness.work()
    done = harness.view(view.id)
    assert done.status == "completed"
    assert done.steps[1].output["results"] == [{"item": "x"}, {"item": "y"}, {"item": "z"}]
    assert ran == [0, 1, 1, 2]  # the item that succeeded did not run again
    assert done.steps[1].items == {
        "total": 3,
        "done": 3,
        "failed": 0,
        "running": 0,
        "pending": 0,
        "cancelled": 0,
    }


def test_a_map_reset_by_an_upstream_retry_runs_whole_again(harness: Harness) -> None:
    ran: list[tuple[int, Any]] = []
    harness.agent("source", lambda ctx: {"items": [ctx.attempt * 10, ctx.attempt * 10 + 1]})

    def item(ctx: AgentContext) -> dict[str, Any]:
        ran.append((ctx.index, ctx.item))
        if ctx.item == 11:
            raise FatalError("no")
        return {"item": ctx.item}

    harness.agent("item", item)
    harness.register(mapped())
    view = harness.run("mapped")
    assert view.status == "failed"
    harness.coordinator.retry(view.id, "op", from_step="source")  # new items: all of them run
    harness.work()
    assert harness.view(view.id).steps[1].output["results"] == [{"item": 20}, {"item": 21}]
    assert sorted(ran) == [(0, 10), (0, 20), (1, 11), (1, 21)]


def test_in_step_mode_a_map_is_one_step(harness: Harness) -> None:
    given_items(harness, [1, 2, 3])
    harness.register(mapped())
    record = harness.start("mapped", mode="step")
    assert harness.coordinator.next_step(record.id, "op") == "source"
    harness.work()
    assert harness.coordinator.next_step(record.id, "op") == "each"
    harness.work()
    assert harness.statuses(record.id)["each"] == "succeeded"
    assert harness.coordinator.next_step(record.id, "op") == "after"
    harness.work()
    assert harness.view(record.id).status == "completed"


def test_logs_show_each_items_attempts_with_its_index(harness: Harness) -> None:
    from workflow_engine.store.repository import LogQuery

    given_items(harness, ["a", "b"])
    harness.register(mapped())
    view = harness.run("mapped")
    logs = harness.store.logs(view.id, LogQuery(step_name="each"))
    assert sorted((-1 if r.item_index is None else r.item_index, r.status) for r in logs) == [
        (-1, "succeeded"),
        (0, "succeeded"),
        (1, "succeeded"),
    ]
    only = harness.store.logs(view.id, LogQuery(index=1))
    assert [(r.step_name, r.item_index, r.item) for r in only] == [("each", 1, "b")]


def test_an_item_lost_with_its_worker_runs_again_and_one_past_its_timeout_is_retried(
    harness: Harness,
) -> None:
    given_items(harness, ["a", "b"])
    harness.register(mapped(timeout=5, retry={"max_attempts": 2, "initial_delay": 1}))
    record = harness.start("mapped")
    harness.deliver_one()  # source
    first, second = [r for r in harness.runs(record.id, "each") if r.item_index is not None]
    harness.broker.queue.clear()
    assert harness.coordinator.claim(second.id, "hung-worker") is not None  # it hangs
    harness.clock.advance(7)  # past its timeout (and the grace), not yet lost
    report = harness.reconciler.tick()
    assert (report.timed_out, report.lost) == (1, 0), report.as_dict()
    assert harness.coordinator.claim(first.id, "gone-worker") is not None  # then its worker dies
    harness.clock.advance(30)  # past worker_lost_after
    assert harness.reconciler.tick().lost >= 1
    harness.work()
    view = harness.view(record.id)
    assert view.status == "completed"
    errors = sorted(
        (r.item_index, r.attempt, r.error_type) for r in harness.runs(record.id, "each") if r.error_type
    )
    assert errors == [(0, 1, "worker_lost"), (1, 1, "timeout")]
    assert harness.view(record.id).steps[1].output["results"] == [{"step": "each"}, {"step": "each"}]


def test_an_item_that_fails_while_paused_waits_for_the_resume_with_its_backoff(harness: Harness) -> None:
    given_items(harness, ["a", "b"])
    harness.agent("item", fails_first(TransientError("busy"), {"ok": True}))
    harness.register(mapped(retry={"max_attempts": 2, "initial_delay": 5}))
    record = harness.start("mapped")
    harness.deliver_one()  # source: both items queued
    first = next(r for r in harness.runs(record.id, "each") if r.item_index == 0)
    claim = harness.coordinator.claim(first.id, "w1")
    assert claim is not None
    harness.coordinator.pause(record.id, "op")
    outcome = harness.executor.run(claim)
    harness.coordinator.finish(claim, outcome)  # it failed during the pause: its retry is held
    held = [r for r in harness.runs(record.id, "each") if r.item_index == 0 and r.attempt == 2]
    assert [r.status for r in held] == ["pending"] and held[0].not_before is not None
    counts = harness.view(record.id).steps[1].items
    assert counts is not None and counts["running"] == 0 and counts["pending"] == 2
    harness.coordinator.resume(record.id, "op")
    harness.work()
    view = harness.view(record.id)
    assert view.status == "completed"
    assert view.steps[1].output["results"] == [{"ok": True}, {"ok": True}]
