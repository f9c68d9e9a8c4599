"""Workflow steps and workflow maps: child executions started once, linked to their parent,
ending their parent's step, and following its pause, resume, cancel and retry."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.harness import Harness
from workflow_engine.agents import AgentContext
from workflow_engine.definitions import WorkflowBuilder
from workflow_engine.errors import FatalError


def child_workflow(harness: Harness, fail_when: int | None = None) -> None:
    """child: double (n → 2n) → finish (2n + 1); ``finish`` fails for n == ``fail_when``."""
    harness.agent("double", lambda ctx: {"doubled": ctx.input["n"] * 2})

    def finish(ctx: AgentContext) -> dict[str, Any]:
        if ctx.input["n"] == fail_when:
            raise FatalError(f"no {ctx.input['n']}")
        return {"final": ctx.steps["double"]["doubled"] + 1}

    harness.agent("finish", finish)
    harness.register(
        WorkflowBuilder("child", input_schema={"type": "object", "required": ["n"]})
        .agent("double")
        .agent("finish")
    )


def parent_workflow(harness: Harness, **options: Any) -> None:
    harness.register(
        WorkflowBuilder("parent")
        .agent("begin")
        .workflow("sub", "child", input={"n": "input.n"}, after="begin", **options)
        .agent("end", after="sub")
    )


def test_a_workflow_step_is_a_linked_child_whose_output_is_the_steps(harness: Harness) -> None:
    child_workflow(harness)
    parent_workflow(harness)
    view = harness.run("parent", input_data={"n": 5}, metadata={"team": "a"})
    assert view.status == "completed"
    assert harness.view(view.id).steps[1].output == {"finish": {"final": 11}}
    assert harness.view(view.id).steps[1].duration_ms is not None
    (child,) = harness.store.children(view.id)
    assert (child.parent_execution_id, child.parent_step, child.parent_index) == (view.id, "sub", None)
    assert child.status == "completed" and child.depth == 1
    assert child.metadata == {"team": "a"} and child.input == {"n": 5}
    parent = harness.store.get_execution(view.id)
    assert child.owner_id == parent.owner_id and child.mode == parent.mode
    assert harness.statuses(child.id) == {"double": "succeeded", "finish": "succeeded"}


def test_a_failed_child_fails_a_required_step_and_its_parent(harness: Harness) -> None:
    child_workflow(harness, fail_when=3)
    parent_workflow(harness)
    view = harness.run("parent", input_data={"n": 3})
    assert view.status == "failed"
    assert view.error is not None and view.error["type"] == "child_failed"
    assert "no 3" in view.error["message"]


def test_retrying_the_parent_retries_the_failed_child_from_its_failed_step(harness: Harness) -> None:
    broken = {"on": True}
    harness.agent("double", lambda ctx: {"doubled": ctx.input["n"] * 2})

    def finish(ctx: AgentContext) -> dict[str, Any]:
        if broken["on"]:
            raise FatalError("down")
        return {"final": 1}

    harness.agent("finish", finish)
    harness.register(WorkflowBuilder("child").agent("double").agent("finish"))
    parent_workflow(harness)
    view = harness.run("parent", input_data={"n": 1})
    assert view.status == "failed"
    (child,) = harness.store.children(view.id)
    broken["on"] = False
    harness.calls.clear()
    harness.clock.advance(60)  # the operator retries later
    harness.coordinator.retry(view.id, "op")
    harness.work()
    assert harness.view(view.id).status == "completed"
    assert [c.id for c in harness.store.children(view.id)] == [child.id]  # the same child, retried
    assert ("double", 1) not in harness.calls and ("finish", 2) in harness.calls


def test_retrying_a_workflow_map_never_reruns_a_succeeded_child(harness: Harness) -> None:
    child_workflow(harness, fail_when=2)
    harness.agent("begin", lambda ctx: {"ns": [1, 2, 3]})
    harness.register(
        WorkflowBuilder("fan")
        .agent("begin")
        .map("kids", "steps.begin.ns", workflow="child", input={"n": "item"}, after="begin")
    )
    view = harness.run("fan")
    assert view.status == "failed"
    children = {c.parent_index: c for c in harness.store.children(view.id)}
    # the failed child failed the map: the one still running was cancelled with it
    assert {i: c.status for i, c in children.items()} == {0: "completed", 1: "failed", 2: "cancelled"}
    child_workflow(harness, fail_when=None)  # the fix is deployed
    harness.calls.clear()
    harness.clock.advance(60)
    harness.coordinator.retry(view.id, "op")
    harness.work()
    done = harness.view(view.id)
    assert done.status == "completed"
    assert done.steps[1].output["results"] == [
        {"finish": {"final": 3}},
        {"finish": {"final": 5}},
        {"finish": {"final": 7}},
    ]
    after = harness.store.children(view.id)
    assert [c.id for c in after if c.parent_index == 0] == [children[0].id]  # not run again
    assert [c.id for c in after if c.parent_index == 1] == [children[1].id]  # retried
    assert len([c for c in after if c.parent_index == 2]) == 2  # a cancelled child starts anew
    assert sorted(harness.calls) == [("double", 1), ("finish", 1), ("finish", 2)]


def test_a_child_is_started_once_whatever_is_asked_twice(harness: Harness) -> None:
    child_workflow(harness)
    parent_workflow(harness)
    record = harness.start("parent", input_data={"n": 2})
    harness.deliver_one()  # begin: the child starts
    for _ in range(3):  # a duplicate delivery, a reconciler pass: nothing more starts
        harness.coordinator.children.sync(record.id, "sub", None)
    # two starters that both saw no child yet (a race): the second finds the first one's
    parent = harness.store.get_execution(record.id)
    (run,) = [r for r in harness.runs(record.id, "sub")]
    assert harness.coordinator.children.start(parent, "sub", None, run.input, 0) is None
    harness.work()
    assert len(harness.store.children(record.id)) == 1
    assert harness.view(record.id).status == "completed"


def test_cancelling_a_parent_cancels_its_running_children(harness: Harness) -> None:
    child_workflow(harness)
    parent_workflow(harness)
    record = harness.start("parent", input_data={"n": 2})
    harness.deliver_one()
    (child,) = harness.store.children(record.id)
    harness.coordinator.cancel(record.id, "op", reason="stop")
    harness.work()
    assert harness.view(record.id).status == "cancelled"
    assert harness.store.get_execution(child.id).status == "cancelled"
    assert not any(name == "double" for name, _ in harness.calls)


def test_pausing_a_parent_pauses_its_children_and_resuming_resumes_them(harness: Harness) -> None:
    child_workflow(harness)
    parent_workflow(harness)
    record = harness.start("parent", input_data={"n": 2})
    harness.deliver_one()
    (child,) = harness.store.children(record.id)
    harness.coordinator.pause(record.id, "op")
    harness.work()
    assert harness.store.get_execution(child.id).status == "paused"
    harness.coordinator.resume(record.id, "op")
    harness.work()
    assert harness.store.get_execution(child.id).status == "completed"
    assert harness.view(record.id).status == "completed"


def test_nesting_deeper_than_the_limit_fails_the_step(database_url: str) -> None:
    harness = Harness(database_url, max_workflow_depth=2)
    try:
        harness.register(WorkflowBuilder("deep").workflow("again", "deep"))
        view = harness.run("deep")
        chain = [view.id]
        while children := harness.store.children(chain[-1]):
            chain.append(children[0].id)
        assert len(chain) == 3  # the execution and two levels of children
        deepest = harness.store.get_execution(chain[-1])
        assert deepest.status == "failed" and deepest.error is not None
        assert "would nest deeper than 2" in deepest.error["message"]
        assert view.status == "failed"
    finally:
        harness.close()


def test_a_child_whose_input_does_not_fit_its_workflow_fails_the_step_with_the_reason(
    harness: Harness,
) -> None:
    child_workflow(harness)
    harness.register(WorkflowBuilder("parent").workflow("sub", "child", input={"m": "1"}))
    view = harness.run("parent")
    assert view.status == "failed"
    assert view.error is not None and view.error["type"] == "child_refused"
    assert "'n' is a required property" in view.error["message"]
    assert harness.store.children(view.id) == []
    # the start answers the execution as its follow-up left it (the refusal failed it)
    started = harness.start("parent")
    assert started == harness.store.get_execution(started.id) and started.status == "failed"


@pytest.mark.unit
def test_a_definition_naming_an_unknown_child_workflow_or_version_is_refused() -> None:
    from workflow_engine.definitions import load
    from workflow_engine.definitions.validation import unknown_children

    definition = load(
        {
            "name": "p",
            "steps": [
                {"name": "a", "type": "workflow", "workflow": "known"},
                {"name": "b", "type": "workflow", "workflow": "known", "version": "9.0.0"},
                {"name": "c", "type": "workflow", "workflow": "ghost"},
                {"name": "d", "type": "workflow", "workflow": "p"},
            ],
        }
    )
    problems = unknown_children(
        definition, lambda name, version: name == "known" and version in (None, "1.0.0")
    )
    assert [(p.location, p.message) for p in problems] == [
        ("steps[1] 'b'.workflow", "unknown workflow 'known' version 9.0.0: register it first"),
        ("steps[2] 'c'.workflow", "unknown workflow 'ghost': register it first"),
    ]


def test_the_reconciler_starts_a_child_and_hears_its_end_when_a_crash_lost_them(harness: Harness) -> None:
    child_workflow(harness)
    parent_workflow(harness)
    harness.coordinator.outbox.follow_up = None  # what follows each commit is lost, as in a crash
    record = harness.start("parent", input_data={"n": 4})
    harness.work()
    assert harness.store.children(record.id) == []
    harness.clock.advance(60)
    assert harness.reconciler.tick().children == 1  # the child starts
    harness.work()
    (child,) = harness.store.children(record.id)
    assert harness.store.get_execution(child.id).status == "completed"
    assert harness.statuses(record.id)["sub"] == "running"  # its end was not heard
    harness.clock.advance(60)
    assert harness.reconciler.tick().children == 1
    harness.work()
    assert harness.view(record.id).status == "completed"
    assert harness.reconciler.tick().children == 0


def test_the_reconciler_cancels_children_whose_parent_ended_without_them(harness: Harness) -> None:
    child_workflow(harness)
    parent_workflow(harness)
    record = harness.start("parent", input_data={"n": 4})
    harness.deliver_one()
    (child,) = harness.store.children(record.id)
    harness.coordinator.outbox.follow_up = None
    harness.coordinator.cancel(record.id, "op")
    assert harness.store.get_execution(child.id).status == "running"
    harness.clock.advance(60)
    assert harness.reconciler.tick().children == 1
    assert harness.store.get_execution(child.id).status == "cancelled"


def test_a_workflow_step_that_ends_the_workflow_completes_its_parent(harness: Harness) -> None:
    child_workflow(harness)
    harness.register(WorkflowBuilder("last").workflow("sub", "child", input={"n": "2"}))
    view = harness.run("last")
    assert view.status == "completed"
    assert view.output == {"sub": {"finish": {"final": 5}}}


def test_the_reconciler_resumes_a_child_whose_parents_resume_was_lost(harness: Harness) -> None:
    child_workflow(harness)
    parent_workflow(harness)
    record = harness.start("parent", input_data={"n": 4})
    harness.deliver_one()
    (child,) = harness.store.children(record.id)
    harness.coordinator.pause(record.id, "op")
    assert harness.store.get_execution(child.id).status == "paused"
    harness.coordinator.outbox.follow_up = None  # the resume's cascade is lost
    harness.coordinator.resume(record.id, "op")
    harness.coordinator.outbox.follow_up = harness.coordinator._follow_up
    assert harness.store.get_execution(child.id).status == "paused"
    harness.clock.advance(60)
    assert harness.reconciler.tick().children == 1
    harness.work()
    assert harness.view(record.id).status == "completed"


def test_a_step_run_again_with_other_input_starts_a_new_child(harness: Harness) -> None:
    child_workflow(harness, fail_when=1)
    harness.agent("begin", lambda ctx: {"n": ctx.attempt})  # 1, then 2 when run again
    harness.register(
        WorkflowBuilder("parent")
        .agent("begin")
        .workflow("sub", "child", input={"n": "steps.begin.n"}, after="begin")
    )
    view = harness.run("parent")
    assert view.status == "failed"
    harness.clock.advance(60)
    harness.coordinator.retry(view.id, "op", from_step="begin")
    harness.work()
    done = harness.view(view.id)
    assert done.status == "completed"
    children = harness.store.children(view.id)
    assert [(c.input, c.status) for c in children] == [({"n": 1}, "failed"), ({"n": 2}, "completed")]
    assert done.steps[1].output == {"finish": {"final": 5}}


def test_a_parents_late_cancel_never_stops_the_children_of_its_retry(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The map fails while a child runs; the cancel meant for it arrives only after the parent
    was retried: the old child is stopped, the retry's new child is not, and the map completes."""

    def finish(ctx: AgentContext) -> dict[str, Any]:
        if ctx.input["n"] == 2:
            harness.coordinator.outbox.follow_up = None  # what follows this failure comes late
            raise FatalError("no 2")
        return {"final": ctx.input["n"]}

    harness.agent("double", lambda ctx: {"doubled": ctx.input["n"] * 2})
    harness.agent("finish", finish)
    harness.register(WorkflowBuilder("child").agent("double").agent("finish"))
    harness.agent("begin", lambda ctx: {"ns": [1, 2, 3]})
    harness.register(
        WorkflowBuilder("fan")
        .agent("begin")
        .map("kids", "steps.begin.ns", workflow="child", input={"n": "item"}, after="begin")
    )
    record = harness.start("fan")
    while harness.coordinator.outbox.follow_up is not None:
        assert harness.deliver_one()
    kids = {c.parent_index: c for c in harness.store.children(record.id)}
    assert kids[1].status != "running" and kids[2].status == "running"
    harness.coordinator.children.ended(kids[1].id)  # the map fails; its cancel for kid 2 is not sent
    assert harness.store.get_execution(record.id).status == "failed"
    assert harness.store.get_execution(kids[2].id).status == "running"
    harness.coordinator.outbox.follow_up = harness.coordinator._follow_up
    harness.agent("finish", lambda ctx: {"final": ctx.input["n"]})  # the fix is deployed
    monkeypatch.setattr(harness.clock, "now", lambda: harness.clock.advance(0.001))  # time passes
    harness.coordinator.retry(record.id, "op")
    harness.coordinator.children.cascade(record.id, "cancel", "kids", 0)  # the failure's cancel, late
    harness.work()
    done = harness.view(record.id)
    assert done.status == "completed", done.error
    assert done.steps[1].output["results"] == [{"finish": {"final": n}} for n in (1, 2, 3)]
    assert harness.store.get_execution(kids[2].id).status == "cancelled"  # the old one stopped
    latest = {c.parent_index: c for c in harness.store.children(record.id)}
    assert latest[2].id != kids[2].id and latest[2].status == "completed"


def test_a_child_that_ended_between_the_listing_and_its_cancel_is_left_as_it_is(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A retry cancels the children still stopping with their parent; one that another process
    cancelled after they were listed did not take the cancel, and the retry goes on."""
    child_workflow(harness)
    parent_workflow(harness)
    record = harness.start("parent", input_data={"n": 2})
    harness.deliver_one()
    listed = harness.store.children(record.id)  # running, as listed
    harness.coordinator.cancel(listed[0].id, "someone else")
    monkeypatch.setattr(harness.store, "children", lambda *args, **kwargs: listed)
    harness.coordinator.children.cascade(record.id, "cancel", None, None)  # raised InvalidTransition before
    assert harness.store.get_execution(listed[0].id).status == "cancelled"
