"""Executions driven through the real coordinator and executor, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import itertools
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest

from tests.support.harness import Harness, fan
from workflow_engine.agents import AgentContext
from workflow_engine.coordinator.reconciler import Reconciler
from workflow_engine.decisions.outcomes import Success
from workflow_engine.definitions import WorkflowBuilder
from workflow_engine.errors import (
    Conflict,
    DefinitionError,
    FatalError,
    InputError,
    InvalidTransition,
    TransientError,
    ValidationError,
)


def chain(name: str = "chain", *steps: str) -> WorkflowBuilder:
    builder = WorkflowBuilder(name)
    for step in steps or ("a", "b", "c"):
        builder.agent(step)
    return builder


def test_sequential_steps_run_in_order_and_the_last_output_is_the_result(harness: Harness) -> None:
    harness.register(chain())
    harness.agent("c", lambda ctx: {"total": ctx.steps["a"]["step"] + ctx.steps["b"]["step"]})
    view = harness.run("chain")
    assert view.status == "completed" and view.percent_complete == 100.0
    assert [name for name, _ in harness.calls] == ["a", "b", "c"]
    assert view.output == {"c": {"total": "ab"}}
    assert [s.status for s in view.steps] == ["succeeded"] * 3


def test_history_records_every_transition_of_execution_and_steps(harness: Harness) -> None:
    harness.register(chain("two", "a", "b"))
    view = harness.run("two")
    assert harness.history(view.id) == [
        (None, None, "initialized"),
        (None, "initialized", "running"),
        ("a", None, "queued"),
        ("a", "queued", "running"),
        ("a", "running", "succeeded"),
        ("b", None, "queued"),
        ("b", "queued", "running"),
        ("b", "running", "succeeded"),
        (None, "running", "completed"),
    ]
    events = harness.store.events(view.id)
    assert {e.actor for e in events if e.from_status == "queued"} == {"harness-worker:1"}


def fan_in(name: str = "fan") -> WorkflowBuilder:
    return (
        WorkflowBuilder(name)
        .agent("start")
        .agent("left", after="start")
        .agent("right", after="start")
        .agent("join", after=["left", "right"])
    )


@pytest.mark.parametrize("order", [["left", "right"], ["right", "left"]])
def test_join_runs_exactly_once_after_both_branches(harness: Harness, order: list[str]) -> None:
    harness.register(fan_in())
    record = harness.start("fan")
    harness.deliver_one()  # start
    branches = {d.step: d for d in harness.broker.queue}
    assert set(branches) == {"left", "right"}
    harness.broker.queue = [branches[order[0]], branches[order[1]]]
    harness.work()
    assert [name for name, _ in harness.calls].count("join") == 1
    assert harness.view(record.id).status == "completed"


def test_false_condition_skips_a_branch_and_the_skip_propagates(harness: Harness) -> None:
    harness.register(
        WorkflowBuilder("route")
        .agent("review")
        .agent("approve", after="review", when="steps.review.score >= 80")
        .agent("publish", after="approve")
        .agent("reject", after="review", when="steps.review.score < 80")
    )
    harness.agent("review", lambda ctx: {"score": ctx.input["score"]})
    high = harness.run("route", input_data={"score": 91})
    assert harness.statuses(high.id) == {
        "review": "succeeded",
        "approve": "succeeded",
        "publish": "succeeded",
        "reject": "skipped",
    }
    low = harness.run("route", input_data={"score": 12})
    assert harness.statuses(low.id) == {
        "review": "succeeded",
        "approve": "skipped",
        "publish": "skipped",
        "reject": "succeeded",
    }
    assert low.status == "completed" and low.percent_complete == 100.0


def test_join_with_one_skipped_branch_still_runs(harness: Harness) -> None:
    harness.register(
        WorkflowBuilder("half")
        .agent("start")
        .agent("left", after="start", when="input.left")
        .agent("right", after="start")
        .agent("join", after=["left", "right"])
    )
    view = harness.run("half", input_data={"left": False})
    assert harness.statuses(view.id)["join"] == "succeeded"
    assert harness.statuses(view.id)["left"] == "skipped"


def test_a_condition_that_fails_to_evaluate_fails_the_execution_clearly(harness: Harness) -> None:
    harness.register(WorkflowBuilder("bad").agent("a").agent("b", after="a", when="steps.a.missing > 1"))
    view = harness.run("bad")
    assert view.status == "failed"
    assert view.error is not None and view.error["type"] == "condition"
    assert "steps.a has no key 'missing'" in view.error["message"]


def test_the_conditions_of_one_step_share_one_evaluation_budget(harness: Harness) -> None:
    # each condition alone is well within a budget; the twelve together are not, so that one
    # decision never spends more than one budget however many edges leave the step
    builder = WorkflowBuilder("wide").agent("a")
    for index in range(12):
        builder = builder.agent(f"b{index}", after="a", when="len(str(input.x)) > 0")
    harness.register(builder)
    view = harness.run("wide", input_data={"x": list(range(30_000))})
    assert view.status == "failed"
    assert view.error is not None and "evaluation budget" in view.error["message"]


def test_optional_failure_is_recorded_and_the_workflow_goes_on(harness: Harness) -> None:
    harness.register(WorkflowBuilder("opt").agent("a").agent("notify", required=False).agent("c"))

    def broken(ctx: AgentContext) -> None:
        raise FatalError("mail server refused", code="SMTP_550")

    harness.agent("notify", broken)
    view = harness.run("opt")
    assert view.status == "completed"
    notify = next(s for s in view.steps if s.name == "notify")
    assert notify.status == "failed" and notify.attempts == 1
    assert notify.error == {"type": "fatal", "message": "mail server refused", "code": "SMTP_550"}
    assert harness.statuses(view.id)["c"] == "succeeded"


def test_fatal_error_fails_the_step_after_one_attempt_and_the_execution(harness: Harness) -> None:
    harness.register(chain())
    harness.agent("b", lambda ctx: (_ for _ in ()).throw(FatalError("config missing")))
    view = harness.run("chain")
    assert view.status == "failed"
    assert view.error == {"step": "b", "type": "fatal", "message": "config missing", "code": None}
    assert harness.calls == [("a", 1), ("b", 1)]
    assert harness.statuses(view.id)["c"] == "pending"


def test_unexpected_exceptions_are_fatal_and_named(harness: Harness) -> None:
    harness.register(chain("one", "a"))
    harness.agent("a", lambda ctx: {}["nope"])
    view = harness.run("one")
    assert view.error is not None and view.error["type"] == "KeyError"
    assert view.error["message"] == "KeyError: 'nope'"


def test_transient_errors_are_retried_with_exponential_backoff(harness: Harness) -> None:
    harness.register(chain("flaky", "a"))

    def flaky(ctx: AgentContext) -> dict[str, Any]:
        if ctx.attempt < 3:
            raise TransientError("busy")
        return {"ok": True}

    harness.agent("a", flaky)
    view = harness.run("flaky")
    assert view.status == "completed"
    runs = harness.runs(view.id, "a")
    assert [(r.attempt, r.status, r.error_type) for r in runs] == [
        (1, "failed", "transient"),
        (2, "failed", "transient"),
        (3, "succeeded", None),
    ]
    gaps = [
        (later.started_at - earlier.finished_at).total_seconds()
        for earlier, later in itertools.pairwise(runs)
    ]
    assert 0.9 <= gaps[0] <= 1.1 and 1.8 <= gaps[1] <= 2.2


def test_transient_errors_fail_the_step_after_max_attempts(harness: Harness) -> None:
    harness.register(WorkflowBuilder("hopeless").agent("a", retry={"max_attempts": 2, "initial_delay": 5}))
    harness.agent("a", lambda ctx: (_ for _ in ()).throw(ConnectionResetError("reset by peer")))
    view = harness.run("hopeless")
    assert view.status == "failed"
    assert [(r.attempt, r.error_type) for r in harness.runs(view.id, "a")] == [
        (1, "connection"),
        (2, "connection"),
    ]


def test_seed_step_without_retry_on_failure_gets_exactly_one_attempt(harness: Harness) -> None:
    harness.register(
        {"name": "seed", "steps": [{"name": "v", "agent": "validator", "retry_on_failure": False}]}
    )
    harness.agent("validator", lambda ctx: (_ for _ in ()).throw(TransientError("flaky")))
    view = harness.run("seed")
    assert view.status == "failed" and len(harness.runs(view.id, "v")) == 1


def test_validation_error_sends_the_execution_waiting_and_a_retry_runs_it_again(harness: Harness) -> None:
    harness.register(chain())

    def picky(ctx: AgentContext) -> dict[str, Any]:
        if ctx.attempt == 1:
            raise ValidationError("missing title", code="NO_TITLE")
        return {"fixed": True}

    harness.agent("b", picky)
    view = harness.run("chain")
    assert view.status == "waiting"
    b = next(s for s in view.steps if s.name == "b")
    assert b.status == "waiting" and b.error == {
        "type": "validation",
        "message": "missing title",
        "code": "NO_TITLE",
    }
    harness.coordinator.retry(view.id, "tester")
    harness.work()
    assert harness.view(view.id).status == "completed"
    assert [(r.attempt, r.status) for r in harness.runs(view.id, "b")] == [(1, "failed"), (2, "succeeded")]


def test_a_step_waiting_for_a_fix_can_be_completed_with_corrected_data(harness: Harness) -> None:
    harness.register(chain())
    harness.agent("b", lambda ctx: (_ for _ in ()).throw(ValidationError("bad")))
    view = harness.run("chain")
    harness.coordinator.complete_step(view.id, "b", {"corrected": 1}, "editor")
    harness.work()
    final = harness.view(view.id)
    assert final.status == "completed"
    assert next(s for s in final.steps if s.name == "b").output == {"corrected": 1}


@pytest.mark.parametrize(
    ("result", "message"),
    [
        ({"when": object()}, "not JSON-serialisable"),
        ({"x": float("nan")}, "not JSON-serialisable"),
        (["a", "list"], "must return a dict"),
    ],
)
def test_output_that_is_not_a_json_object_is_a_fatal_error(
    harness: Harness, result: Any, message: str
) -> None:
    harness.register(chain("one", "a"))
    harness.agent("a", lambda ctx: result)
    view = harness.run("one")
    assert view.status == "failed"
    assert (
        view.error is not None and view.error["type"] == "invalid_output" and message in view.error["message"]
    )


def test_async_agents_run_too(harness: Harness) -> None:
    harness.register(chain("one", "a"))

    async def sleepy(ctx: AgentContext) -> dict[str, Any]:
        await asyncio.sleep(0.01)
        return {"async": True}

    harness.agent("a", sleepy)
    assert harness.run("one").output == {"a": {"async": True}}


def test_every_agent_gets_input_metadata_config_and_a_stable_idempotency_key(harness: Harness) -> None:
    seen: list[tuple[Any, ...]] = []
    harness.register(
        WorkflowBuilder("ctx").agent("a", config={"section": "risks"}, retry={"initial_delay": 0})
    )

    def look(ctx: AgentContext) -> dict[str, Any]:
        seen.append((ctx.input, ctx.metadata, ctx.config, ctx.idempotency_key, ctx.attempt))
        if ctx.attempt == 1:
            raise TransientError("again")
        return {}

    harness.agent("a", look)
    view = harness.run("ctx", input_data={"p": 1}, metadata={"user": "u1"})
    key = f"{view.id}:a"
    assert seen == [
        ({"p": 1}, {"user": "u1"}, {"section": "risks"}, key, 1),
        ({"p": 1}, {"user": "u1"}, {"section": "risks"}, key, 2),
    ]


def test_a_checkpoint_saved_by_one_attempt_reaches_the_next(harness: Harness) -> None:
    harness.register(WorkflowBuilder("cp").agent("a", retry={"initial_delay": 0}))
    seen: list[Any] = []

    def resumable(ctx: AgentContext) -> dict[str, Any]:
        seen.append(ctx.checkpoint)
        if ctx.attempt == 1:
            ctx.save_checkpoint({"pages_done": 40})
            raise TransientError("interrupted")
        return {"pages": ctx.checkpoint["pages_done"] + 2}

    harness.agent("a", resumable)
    view = harness.run("cp")
    assert seen == [None, {"pages_done": 40}]
    assert view.output == {"a": {"pages": 42}}


def test_input_is_validated_against_the_schema_and_bad_input_creates_nothing(harness: Harness) -> None:
    harness.register(
        WorkflowBuilder("typed", input_schema={"type": "object", "required": ["project_id"]}).agent("a")
    )
    with pytest.raises(InputError, match="'project_id' is a required property"):
        harness.start("typed", input_data={"other": 1})
    assert harness.store.count_rows()["wfe_executions"] == 0


def test_the_same_idempotency_key_starts_one_execution(harness: Harness) -> None:
    harness.register(chain())
    harness.register(chain("other", "x"))
    first = harness.start("chain", idempotency_key="order-42")
    second = harness.start("chain", idempotency_key="order-42")
    assert first.id == second.id
    assert harness.store.count_rows()["wfe_executions"] == 1
    with pytest.raises(Conflict, match="order-42"):
        harness.start("other", idempotency_key="order-42")


def test_unknown_agents_are_refused_at_start_when_the_catalogue_is_known(harness: Harness) -> None:
    harness.register(chain())
    harness.coordinator.agent_catalog = lambda: {"a", "b"}
    with pytest.raises(DefinitionError, match="unknown agent 'c'"):
        harness.start("chain")


def test_a_message_delivered_twice_runs_the_step_once(harness: Harness) -> None:
    harness.register(chain("one", "a"))
    harness.start("one")
    harness.broker.queue.append(harness.broker.queue[0])
    harness.work()
    assert harness.calls == [("a", 1)]


def test_steps_read_upstream_outputs(harness: Harness) -> None:
    harness.register(chain("pipe", "fetch", "count"))
    harness.agent("fetch", lambda ctx: {"items": [1, 2, 3]})
    harness.agent("count", lambda ctx: {"n": len(ctx.steps["fetch"]["items"]), "known": sorted(ctx.steps)})
    assert harness.run("pipe").output == {"count": {"n": 3, "known": ["fetch"]}}


def test_step_timeout_is_enforced_by_the_reconciler_and_retried(harness: Harness) -> None:
    harness.register(
        WorkflowBuilder("slow").agent("a", timeout=5, retry={"max_attempts": 2, "initial_delay": 1})
    )
    record = harness.start("slow")
    claim = harness.coordinator.claim(harness.broker.queue.pop().run_id, "stuck-worker:9")
    assert claim is not None
    harness.clock.advance(5 + harness.settings.timeout_grace + 1)
    report = harness.reconciler.tick()
    assert report.timed_out == 1
    runs = harness.runs(record.id, "a")
    assert (runs[0].status, runs[0].error_type) == ("failed", "timeout")
    assert ("a", "stuck-worker:9") not in harness.broker.revoked
    assert (f"{record.id}:a:1", True) in harness.broker.revoked
    harness.work()
    assert harness.view(record.id).status == "completed"
    late = harness.coordinator.finish(claim, Success({}, 1))
    assert late.result == "discarded" and late.next is None  # the stuck attempt's late result is discarded


def test_an_attempt_whose_worker_died_runs_again_without_using_the_retry_budget(harness: Harness) -> None:
    harness.register(WorkflowBuilder("lost").agent("a", retry={"max_attempts": 1}))
    record = harness.start("lost")
    assert harness.coordinator.claim(harness.broker.queue.pop().run_id, "dead-worker:7") is not None
    harness.clock.advance(harness.settings.worker_lost_after + 1)
    assert harness.reconciler.tick().lost == 1
    assert harness.reconciler.tick().lost == 0  # idempotent
    harness.work()
    view = harness.view(record.id)
    assert view.status == "completed"
    assert [(r.attempt, r.status, r.error_type) for r in harness.runs(record.id, "a")] == [
        (1, "failed", "worker_lost"),
        (2, "succeeded", None),
    ]


def test_a_step_that_keeps_losing_its_worker_fails_after_the_limit(harness: Harness) -> None:
    harness.register(chain("doomed", "a"))
    record = harness.start("doomed")
    for _ in range(harness.settings.max_worker_losses):
        harness.coordinator.claim(harness.broker.queue.pop().run_id, "dead:1")
        harness.clock.advance(harness.settings.worker_lost_after + 1)
        harness.reconciler.tick()
    view = harness.view(record.id)
    assert view.status == "failed" and view.error is not None and view.error["type"] == "worker_lost"


def test_runs_written_while_the_broker_was_down_are_published_by_the_reconciler(harness: Harness) -> None:
    harness.register(chain())
    harness.broker.down = True
    record = harness.start("chain")
    assert harness.broker.queue == []
    harness.broker.down = False
    assert harness.reconciler.tick().published == 1
    harness.work()
    assert harness.view(record.id).status == "completed"


def test_messages_lost_by_the_broker_are_published_again_once_overdue(harness: Harness) -> None:
    harness.register(chain())
    record = harness.start("chain")
    harness.broker.queue.clear()  # the broker lost its queues
    assert harness.reconciler.tick().republished == 0  # not overdue yet
    harness.clock.advance(harness.settings.redispatch_after + 1)
    assert harness.reconciler.tick().republished == 1
    assert harness.reconciler.tick().republished == 0
    harness.work()
    assert harness.view(record.id).status == "completed"
    repairs = [(e.step_name, e.to_status, e.actor, e.reason) for e in harness.store.events(record.id)]
    assert ("a", "queued", "reconciler", "publishing again: its message is overdue") in repairs


def test_reconcilers_running_at_once_publish_each_lost_message_once(harness: Harness) -> None:
    harness.register(fan(width=6))
    record = harness.start("fan")
    harness.deliver_one()  # start → six branches queued
    harness.broker.queue.clear()  # the broker lost them
    harness.broker.published.clear()
    harness.clock.advance(harness.settings.redispatch_after + 1)
    reconcilers = [Reconciler(harness.coordinator, harness.settings, harness.clock) for _ in range(4)]
    ready = threading.Barrier(len(reconcilers))

    def tick(reconciler: Reconciler) -> int:
        ready.wait()
        return reconciler.tick().republished

    with ThreadPoolExecutor(len(reconcilers)) as pool:
        republished = list(pool.map(tick, reconcilers))
    assert sum(republished) == 6
    assert sorted(d.step for d in harness.broker.published) == [f"b{i}" for i in range(6)]
    harness.work()
    assert harness.view(record.id).status == "completed"


def test_join_starts_once_when_its_branches_finish_at_the_same_moment(harness: Harness) -> None:
    harness.register(fan(width=4))
    records = [harness.start("fan") for _ in range(5)]
    while any(d.step == "start" for d in harness.broker.queue):
        harness.deliver_one()
    claims = [harness.coordinator.claim(d.run_id, "w:1", d.task_id) for d in harness.broker.queue]
    harness.broker.queue.clear()
    ready = threading.Barrier(len(claims))

    def finish(claim: Any) -> None:
        ready.wait()
        harness.coordinator.finish(claim, Success({"branch": claim.step.name}, 1))

    with ThreadPoolExecutor(len(claims)) as pool:
        list(pool.map(finish, claims))
    for record in records:
        assert [d.step for d in harness.broker.queue if d.execution_id == record.id] == ["join"]
    harness.work()
    for record in records:
        assert harness.view(record.id).status == "completed"
        assert len(harness.runs(record.id, "join")) == 1


def test_retries_beyond_the_eta_horizon_wait_in_the_database(harness: Harness) -> None:
    harness.register(WorkflowBuilder("later").agent("a", retry={"initial_delay": 3600, "max_delay": 3600}))
    harness.agent("a", lambda ctx: {} if ctx.attempt > 1 else (_ for _ in ()).throw(TransientError("x")))
    record = harness.start("later")
    harness.work()
    assert harness.broker.queue == [] and harness.view(record.id).status == "running"
    harness.clock.advance(3600 * 1.2)
    assert harness.reconciler.tick().published == 1
    harness.work()
    assert harness.view(record.id).status == "completed"
    assert (
        timedelta(seconds=3000)
        < harness.runs(record.id, "a")[1].not_before - harness.runs(record.id, "a")[0].finished_at
    )  # type: ignore[operator]


def test_a_worker_runs_the_next_step_of_a_chain_in_place_within_its_budget(harness: Harness) -> None:
    harness.inline_steps = 3
    harness.register(WorkflowBuilder("inline").agent("a").agent("b").agent("c").agent("d").agent("e"))
    record = harness.start("inline")
    harness.work()
    view = harness.view(record.id)
    assert view.status == "completed" and [name for name, _ in harness.calls] == ["a", "b", "c", "d", "e"]
    published = [d.step for d in harness.broker.published]
    assert published == ["a", "e"]  # b, c, d ran in place after a; the budget then ran out
    runs = {r.step_name: r for r in harness.runs(record.id)}
    assert runs["b"].task_id == f"{record.id}:a:1"  # the task that carried it, for revoking
    assert ("b", "queued", "running") in harness.history(record.id)


def test_steps_with_a_timeout_fan_outs_and_other_queues_are_never_run_in_place(harness: Harness) -> None:
    harness.inline_steps = 10
    harness.register(
        WorkflowBuilder("published")
        .agent("a")
        .agent("timed", after="a", timeout=30)
        .agent("x", after="timed")
        .agent("y", after="timed")
        .agent("elsewhere", after=["x", "y"], queue="gpu")
    )
    harness.run("published")
    assert [d.step for d in harness.broker.published] == ["a", "timed", "x", "y", "elsewhere"]


def test_the_store_refuses_step_updates_the_state_machine_does_not_allow(harness: Harness) -> None:
    harness.register(chain("once", "a"))
    view = harness.run("once")
    [run] = harness.runs(view.id, "a")
    for expected, requested in ((("succeeded",), "running"), (("queued", "running"), "pending")):
        with pytest.raises(InvalidTransition), harness.store.transaction() as tx:
            tx.update_run(run.id, {"status": requested}, expect=expected)
        with pytest.raises(InvalidTransition), harness.store.transaction() as tx:
            tx.update_runs_by_id([run.id], {"status": requested}, expected)
    assert [(r.status, r.attempt) for r in harness.runs(view.id, "a")] == [("succeeded", 1)]
