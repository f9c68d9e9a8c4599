"""Operators' verbs, human steps and timers, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.harness import Harness, fails_first, fan
from workflow_engine.agents import AgentContext
from workflow_engine.definitions import WorkflowBuilder
from workflow_engine.errors import (
    FatalError,
    InputError,
    InvalidOperation,
    InvalidTransition,
    PermissionDenied,
    StepNotFound,
)
from workflow_engine.views import ExecutionView


def test_pause_holds_queued_steps_and_resume_releases_them(harness: Harness) -> None:
    harness.register(fan())
    record = harness.start("fan")
    harness.deliver_one()  # start → three branches queued
    running = harness.coordinator.claim(harness.broker.queue.pop(0).run_id, "w:1")  # b0 running
    assert running is not None
    harness.coordinator.pause(record.id, "operator")
    assert harness.view(record.id).status == "paused"
    assert {s.name: s.status for s in harness.view(record.id).steps if s.name.startswith("b")} == {
        "b0": "running",
        "b1": "pending",
        "b2": "pending",
    }
    harness.work()  # stale messages for b1, b2 arrive: dropped, nothing runs
    assert harness.calls == [("start", 1)]
    harness.executor.run(running)
    from workflow_engine.decisions.outcomes import Success

    harness.coordinator.finish(running, Success({"done": 1}, 5))  # running steps finish and are recorded
    assert harness.statuses(record.id)["b0"] == "succeeded"
    assert harness.broker.queue == []
    harness.coordinator.resume(record.id, "operator")
    harness.work()
    view = harness.view(record.id)
    assert view.status == "completed"
    assert harness.execution_history(record.id) == [
        "initialized",
        "running",
        "paused",
        "resumed",
        "running",
        "completed",
    ]


def test_a_retry_falling_due_while_paused_waits_for_resume_with_its_backoff(harness: Harness) -> None:
    from workflow_engine.core.retry import FailureKind
    from workflow_engine.decisions.outcomes import Failure

    harness.register(WorkflowBuilder("flaky").agent("a", retry={"max_attempts": 3, "initial_delay": 4}))
    record = harness.start("flaky")
    running = harness.coordinator.claim(harness.broker.queue.pop(0).run_id, "w:1")
    assert running is not None
    harness.coordinator.pause(record.id, "operator")
    harness.coordinator.finish(running, Failure(FailureKind.TRANSIENT, "transient", "busy", 5))
    assert [(r.attempt, r.status) for r in harness.runs(record.id, "a")] == [(1, "failed"), (2, "pending")]
    assert harness.broker.queue == []  # nothing published while paused
    harness.work()
    assert harness.calls == []
    harness.coordinator.resume(record.id, "operator")
    [message] = harness.broker.queue
    assert harness.runs(record.id, "a")[1].status == "retrying"
    assert message.eta == harness.runs(record.id, "a")[1].not_before  # the backoff is kept
    harness.work()
    assert harness.view(record.id).status == "completed"
    assert harness.calls == [("a", 2)]
    assert ("a", None, "pending") in harness.history(record.id)


def test_a_held_retry_beyond_the_eta_horizon_is_left_to_the_reconciler_on_resume(harness: Harness) -> None:
    from workflow_engine.core.retry import FailureKind
    from workflow_engine.decisions.outcomes import Failure

    retry = {"max_attempts": 2, "initial_delay": 3600, "max_delay": 3600, "jitter": 0}
    harness.register(WorkflowBuilder("later").agent("a", retry=retry))
    record = harness.start("later")
    running = harness.coordinator.claim(harness.broker.queue.pop(0).run_id, "w:1")
    assert running is not None
    harness.coordinator.pause(record.id, "operator")
    harness.coordinator.finish(running, Failure(FailureKind.TRANSIENT, "transient", "busy", 5))
    harness.coordinator.resume(record.id, "operator")
    held = harness.runs(record.id, "a")[1]
    assert (held.status, held.published_at, harness.broker.queue) == ("retrying", None, [])
    harness.clock.advance(3600)
    assert harness.reconciler.tick().published == 1
    harness.work()
    assert harness.view(record.id).status == "completed"


def test_cancel_ends_every_open_run_and_stops_running_ones(harness: Harness) -> None:
    harness.register(fan())
    record = harness.start("fan")
    harness.deliver_one()
    claim = harness.coordinator.claim(harness.broker.queue[0].run_id, "w:1")
    assert claim is not None
    harness.coordinator.cancel(record.id, "operator", reason="customer asked")
    view = harness.view(record.id)
    assert view.status == "cancelled"
    assert {s.name: s.status for s in view.steps} == {
        "start": "succeeded",
        "b0": "cancelled",
        "b1": "cancelled",
        "b2": "cancelled",
        "join": "pending",
    }
    assert (f"{record.id}:b0:1", True) in harness.broker.revoked
    assert (f"{record.id}:b1:1", False) in harness.broker.revoked
    harness.work()
    assert harness.calls == [("start", 1)]
    cancelled = [
        e for e in harness.store.events(record.id) if e.step_name is None and e.to_status == "cancelled"
    ]
    assert [(e.actor, e.reason) for e in cancelled] == [("operator", "customer asked")]


def test_cancelling_a_finished_execution_is_refused(harness: Harness) -> None:
    harness.register(WorkflowBuilder("one").agent("a"))
    view = harness.run("one")
    with pytest.raises(InvalidTransition, match="from completed to cancelled"):
        harness.coordinator.cancel(view.id, "operator")
    assert harness.view(view.id).status == "completed"


def fail_then_retry(harness: Harness, workflow: str, from_step: str) -> tuple[ExecutionView, ExecutionView]:
    """Run ``workflow`` until it fails, retry it from ``from_step``, run it to its end; the failed
    and the final view (the calls made after the failure are left in ``harness.calls``)."""
    view = harness.run(workflow)
    assert view.status == "failed"
    harness.calls.clear()
    harness.coordinator.retry(view.id, "operator", from_step=from_step)
    harness.work()
    final = harness.view(view.id)
    assert final.status == "completed"
    return view, final


def test_retry_from_a_middle_step_keeps_upstream_outputs_and_reruns_downstream(harness: Harness) -> None:
    harness.register(WorkflowBuilder("four").agent("a").agent("b").agent("c").agent("d"))
    harness.agent("c", fails_first(FatalError("boom"), {"c": 2}))
    view, final = fail_then_retry(harness, "four", "b")
    assert harness.calls == [("b", 2), ("c", 2), ("d", 1)]
    assert [(r.attempt, r.status, r.superseded) for r in harness.runs(view.id, "c")] == [
        (1, "failed", True),
        (2, "succeeded", False),
    ]
    assert [(r.attempt, r.status, r.superseded) for r in harness.runs(view.id, "b")] == [
        (1, "succeeded", True),
        (2, "succeeded", False),
    ]
    assert [(r.attempt, r.superseded) for r in harness.runs(view.id, "a")] == [(1, False)]
    assert final.retries == 1


def test_retry_without_a_step_reruns_the_failed_one(harness: Harness) -> None:
    harness.register(WorkflowBuilder("three").agent("a").agent("b").agent("c"))
    harness.agent("b", fails_first(FatalError("x")))
    view = harness.run("three")
    assert harness.coordinator.retry(view.id, "operator") == ["b"]
    harness.work()
    assert harness.view(view.id).status == "completed"
    assert harness.execution_history(view.id)[-3:] == ["failed", "running", "completed"]


def test_retry_refuses_a_step_downstream_of_the_failure(harness: Harness) -> None:
    harness.register(WorkflowBuilder("three").agent("a").agent("b").agent("c"))
    harness.agent("b", lambda ctx: (_ for _ in ()).throw(FatalError("x")))
    view = harness.run("three")
    with pytest.raises(InvalidOperation, match="upstream step 'b' is failed; retry from 'b'"):
        harness.coordinator.retry(view.id, "operator", from_step="c")
    with pytest.raises(StepNotFound):
        harness.coordinator.retry(view.id, "operator", from_step="zzz")


def test_retry_of_a_running_or_completed_execution_is_refused(harness: Harness) -> None:
    harness.register(WorkflowBuilder("one").agent("a"))
    record = harness.start("one")
    with pytest.raises(InvalidOperation, match="only a failed or waiting execution"):
        harness.coordinator.retry(record.id, "operator")


def test_retry_rebuilds_a_join_from_the_branches_it_keeps(harness: Harness) -> None:
    harness.register(fan(width=2))
    harness.agent("b1", fails_first(FatalError("x")))
    view = harness.run("fan")
    assert view.status == "failed"
    harness.coordinator.retry(view.id, "operator")
    harness.work()
    assert harness.view(view.id).status == "completed"
    assert [c for c in harness.calls if c[0] == "join"] == [("join", 1)]


def test_retry_from_another_branch_reruns_the_failed_branch_too(harness: Harness) -> None:
    harness.register(fan(width=2))
    harness.agent("b1", fails_first(FatalError("x")))
    _, final = fail_then_retry(harness, "fan", "b0")
    steps = {s.name: s.status for s in final.steps}
    assert steps == dict.fromkeys(["start", "b0", "b1", "join"], "succeeded")
    assert sorted(harness.calls) == [("b0", 2), ("b1", 2), ("join", 1)]


def test_step_mode_dispatches_one_ready_step_per_call(harness: Harness) -> None:
    harness.register(WorkflowBuilder("steps").agent("a").agent("b").agent("c"))
    record = harness.start("steps", mode="step")
    assert harness.view(record.id).status == "waiting"
    harness.work()
    assert harness.calls == []
    for expected in ("a", "b", "c"):
        harness.coordinator.next_step(record.id, "operator")
        harness.work()
        assert harness.calls[-1] == (expected, 1)
    assert harness.view(record.id).status == "completed"
    with pytest.raises(InvalidOperation):
        harness.coordinator.next_step(record.id, "operator")


def test_next_step_outside_step_mode_is_refused(harness: Harness) -> None:
    harness.register(WorkflowBuilder("auto").agent("a"))
    record = harness.start("auto")
    with pytest.raises(InvalidOperation, match="not in step mode"):
        harness.coordinator.next_step(record.id, "operator")


def approval(name: str = "approval") -> WorkflowBuilder:
    schema = {"type": "object", "required": ["approved"], "properties": {"approved": {"type": "boolean"}}}
    return (
        WorkflowBuilder(name)
        .agent("draft")
        .human("approve", after="draft", input_schema=schema, assignees=["alice", "role:admin"])
        .agent("publish", after="approve", when="steps.approve.approved")
    )


def test_human_step_waits_refuses_invalid_data_then_continues_with_valid_data(harness: Harness) -> None:
    harness.register(approval())
    seen: list[Any] = []
    harness.agent("publish", lambda ctx: seen.append(ctx.steps["approve"]) or {"published": True})
    view = harness.run("approval")
    assert view.status == "waiting"
    assert harness.statuses(view.id)["approve"] == "waiting"
    with pytest.raises(InputError, match="approved: 'yes' is not of type 'boolean'"):
        harness.coordinator.complete_step(view.id, "approve", {"approved": "yes"}, "alice")
    assert harness.statuses(view.id)["approve"] == "waiting"  # nothing changed
    with pytest.raises(PermissionDenied):
        harness.coordinator.complete_step(view.id, "approve", {"approved": True}, "mallory", role="operator")
    harness.coordinator.complete_step(view.id, "approve", {"approved": True}, "alice")
    harness.work()
    final = harness.view(view.id)
    assert final.status == "completed" and seen == [{"approved": True}]
    run = harness.runs(view.id, "approve")[0]
    assert run.completed_by == "alice" and run.output == {"approved": True}
    assert harness.execution_history(view.id) == ["initialized", "running", "waiting", "running", "completed"]


def test_an_admin_role_may_complete_a_task_assigned_to_admins(harness: Harness) -> None:
    harness.register(approval())
    view = harness.run("approval")
    harness.coordinator.complete_step(view.id, "approve", {"approved": False}, "root", role="admin")
    harness.work()
    assert harness.statuses(view.id)["publish"] == "skipped"


def test_completing_a_step_that_does_not_wait_is_refused(harness: Harness) -> None:
    harness.register(approval())
    view = harness.run("approval")
    with pytest.raises(InvalidOperation, match="'draft' is not waiting"):
        harness.coordinator.complete_step(view.id, "draft", {}, "alice")


def test_timer_fires_after_its_delay(harness: Harness) -> None:
    harness.register(
        WorkflowBuilder("sleep").agent("a").timer("nap", after="a", delay=30).agent("b", after="nap")
    )
    record = harness.start("sleep")
    harness.deliver_one()
    started = harness.clock.now()
    assert harness.statuses(record.id)["nap"] == "waiting"
    assert harness.view(record.id).status == "running"
    harness.work()
    nap = harness.runs(record.id, "nap")[0]
    assert nap.finished_at is not None and (nap.finished_at - started).total_seconds() == pytest.approx(
        30, abs=0.01
    )
    assert harness.view(record.id).status == "completed"


def test_a_lost_timer_message_is_fired_by_the_reconciler(harness: Harness) -> None:
    harness.register(WorkflowBuilder("sleep").timer("nap", delay=5).agent("b"))
    record = harness.start("sleep")
    harness.broker.queue.clear()
    harness.clock.advance(4)
    assert harness.reconciler.tick().timers == 0
    harness.clock.advance(5)
    assert harness.reconciler.tick().timers == 1
    harness.work()
    assert harness.view(record.id).status == "completed"


def test_timer_until_reads_a_timestamp_from_the_input(harness: Harness) -> None:
    harness.register(WorkflowBuilder("until").timer("wait", until="input.deadline").agent("b", after="wait"))
    deadline = harness.clock.now().replace(hour=5).isoformat()
    record = harness.start("until", input_data={"deadline": deadline})
    harness.work()
    wait = harness.runs(record.id, "wait")[0]
    assert wait.not_before is not None and wait.not_before.isoformat() == deadline
    assert wait.published_at is None  # beyond the ETA horizon: it waits in the database
    assert harness.view(record.id).status == "running"
    harness.clock.advance(5 * 3600)
    assert harness.reconciler.tick().published == 1
    harness.work()
    assert harness.view(record.id).status == "completed"


def test_timer_with_a_bad_until_fails_clearly(harness: Harness) -> None:
    harness.register(WorkflowBuilder("until").timer("wait", until="input.deadline").agent("b", after="wait"))
    view = harness.run("until", input_data={"deadline": "next tuesday"})
    assert view.status == "failed"
    assert view.error is not None and "not a usable timestamp" in view.error["message"]


def test_pausing_a_waiting_execution_and_resuming_it_waits_again(harness: Harness) -> None:
    harness.register(approval())
    view = harness.run("approval")
    harness.coordinator.pause(view.id, "operator")
    harness.coordinator.resume(view.id, "operator")
    assert harness.view(view.id).status == "waiting"


def test_late_results_of_a_cancelled_execution_are_discarded(harness: Harness) -> None:
    harness.register(WorkflowBuilder("one").agent("a"))
    record = harness.start("one")
    claim = harness.coordinator.claim(harness.broker.queue.pop().run_id, "w:1")
    assert claim is not None
    harness.coordinator.cancel(record.id, "operator")
    outcome = harness.executor.run(claim)
    assert harness.coordinator.finish(claim, outcome).result == "discarded"
    assert harness.statuses(record.id)["a"] == "cancelled"


def test_agents_see_cancellation(harness: Harness) -> None:
    harness.register(WorkflowBuilder("one").agent("a"))
    record = harness.start("one")
    seen: list[bool] = []

    def watchful(ctx: AgentContext) -> dict[str, Any]:
        seen.append(ctx.cancelled)
        harness.coordinator.cancel(record.id, "operator")
        seen.append(ctx.cancelled)
        return {}

    harness.agent("a", watchful)
    harness.work()
    assert seen == [False, True]


def test_retry_after_a_failed_branch_reruns_the_branches_its_failure_cancelled(harness: Harness) -> None:
    harness.register(fan(width=2))
    harness.agent("b0", fails_first(FatalError("x")))
    record = harness.start("fan")
    harness.deliver_one()  # start: b0 and b1 queued
    harness.broker.queue.sort(key=lambda d: d.step)  # b0 fails while b1 is still queued
    harness.deliver_one()
    failed = harness.view(record.id)
    assert failed.status == "failed" and harness.statuses(record.id)["b1"] == "cancelled"
    harness.coordinator.retry(record.id, "operator")
    harness.work()
    assert harness.view(record.id).status == "completed"
    assert [c for c in harness.calls if c[0] == "join"] == [("join", 1)]


def test_an_operator_retry_gives_the_step_a_fresh_retry_budget(harness: Harness) -> None:
    from workflow_engine.errors import TransientError

    harness.register(WorkflowBuilder("budget").agent("a", retry={"max_attempts": 2, "initial_delay": 0}))
    harness.agent("a", lambda ctx: (_ for _ in ()).throw(TransientError("busy")) if ctx.attempt < 4 else {})
    record = harness.start("budget")
    harness.work()
    assert harness.view(record.id).status == "failed"  # attempts 1 and 2
    harness.coordinator.retry(record.id, "operator")
    harness.work()
    assert harness.view(record.id).status == "completed"  # attempts 3 (failed, retried) and 4
    assert [r.attempt for r in harness.runs(record.id, "a")] == [1, 2, 3, 4]


def test_an_unusable_timer_timestamp_fails_the_timer_step_itself(harness: Harness) -> None:
    harness.register(WorkflowBuilder("epoch").agent("a").timer("wait", after="a", until="input.ts"))
    view = harness.run("epoch", input_data={"ts": 1.7e15})
    assert view.status == "failed"
    assert (
        view.error is not None
        and view.error["step"] == "wait"
        and "usable timestamp" in view.error["message"]
    )
    assert harness.calls == [("a", 1)]


def test_nothing_is_queued_once_the_execution_failed_in_the_same_decision(harness: Harness) -> None:
    harness.register(
        WorkflowBuilder("twice")
        .agent("a")
        .timer("t1", after="a", until="input.bad")
        .timer("t2", after="a", until="input.bad", required=False)
        .agent("c", after="t2")
    )
    view = harness.run("twice", input_data={"bad": "never"})
    record = harness.store.get_execution(view.id)
    assert view.status == "failed" and record.active_steps == 0
    assert not [r for r in harness.runs(view.id) if r.status in ("queued", "pending")]
    assert harness.reconciler.tick().total() == 0


def test_cancel_stops_a_step_running_in_place_through_the_task_that_carries_it(harness: Harness) -> None:
    harness.inline_steps = 5
    harness.register(WorkflowBuilder("carried").agent("a").agent("b"))

    def cancelled_while_running(ctx: AgentContext) -> dict[str, Any]:
        harness.coordinator.cancel(ctx.execution_id, "operator")
        return {}

    harness.agent("b", cancelled_while_running)
    record = harness.start("carried")
    harness.work()
    assert harness.calls == [("a", 1), ("b", 1)] and [d.step for d in harness.broker.published] == ["a"]
    assert (f"{record.id}:a:1", True) in harness.broker.revoked  # the task running b in place
    assert harness.statuses(record.id)["b"] == "cancelled"
