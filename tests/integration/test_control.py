"""Operators' verbs, human steps and timers on real processes (Redis broker, PostgreSQL)."""

from __future__ import annotations

import time
from pathlib import Path

import psutil
import pytest

from tests.integration.conftest import Cluster, ledger_lines, sleeping_fan
from workflow_engine.coordinator.reconciler import Reconciler
from workflow_engine.definitions import WorkflowBuilder
from workflow_engine.errors import InputError, InvalidTransition

pytestmark = pytest.mark.slow


def stopped(pid: int) -> bool:
    """The process has exited (a zombie not yet reaped by its pool has exited too)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_pause_during_a_running_fan_out_holds_the_rest_until_resumed(
    redis_cluster: Cluster, ledger: Path
) -> None:
    engine = redis_cluster.engine
    builder, branches = sleeping_fan("pausefan", 6, 1.0)
    engine.register(builder)
    view = engine.start("pausefan", metadata={"ledger": str(ledger)})
    redis_cluster.wait_for(
        lambda: list(redis_cluster.statuses(view.id).values()).count("running") == 2,
        what="two branches running",
    )
    engine.pause(view.id, actor="tester")
    redis_cluster.wait_for(
        lambda: "running" not in redis_cluster.statuses(view.id).values(), what="running branches to finish"
    )
    held = redis_cluster.statuses(view.id)
    # nothing new may start while paused: a repair pass publishes nothing, and the branches not
    # begun are held as pending attempts, never started
    report = Reconciler(engine.coordinator, redis_cluster.settings).tick()
    assert report.published == report.republished == 0, report.as_dict()
    assert redis_cluster.statuses(view.id) == held
    not_begun = [r for r in engine.logs(view.id) if held[r["step_name"]] == "pending"]
    assert len(not_begun) == 4 and all(r["status"] == "pending" and not r["started_at"] for r in not_begun)
    branch_states = [held[b] for b in branches]
    assert branch_states.count("succeeded") == 2 and branch_states.count("pending") == 4
    assert held["join"] == "pending"  # not begun
    assert engine.get(view.id).status == "paused"
    engine.resume(view.id, actor="tester")
    final = redis_cluster.wait(view.id)
    assert final.status == "completed"
    assert [line[1] for line in ledger_lines(ledger)].count("join") == 1
    history = [e.to_status for e in engine.history(view.id) if e.step_name is None]
    assert history == ["initialized", "running", "paused", "resumed", "running", "completed"]


def test_cancel_stops_a_running_step_within_a_bounded_time(redis_cluster: Cluster, ledger: Path) -> None:
    engine = redis_cluster.engine
    engine.register(  # the agent ignores cancellation: only stopping its process stops it
        WorkflowBuilder("cancelme").agent("work", "stubborn", config={"seconds": 30}).agent("after", "echo")
    )
    view = engine.start("cancelme", metadata={"ledger": str(ledger)})
    redis_cluster.wait_for(lambda: len(ledger_lines(ledger)) == 1, what="work running")
    pid = int(ledger_lines(ledger)[0][3])  # the pool process running the agent
    began = time.monotonic()
    cancelled = engine.cancel(view.id, reason="not needed", actor="tester")
    assert cancelled.status == "cancelled" and time.monotonic() - began < 2
    assert redis_cluster.statuses(view.id) == {"work": "cancelled", "after": "pending"}
    redis_cluster.wait_for(lambda: stopped(pid), timeout=10, what="the agent's process to stop")
    print(f"cancel: the running agent stopped {time.monotonic() - began:.2f}s after the cancel")
    with pytest.raises(InvalidTransition):
        engine.cancel(view.id)
    history = [(e.step_name, e.from_status, e.to_status, e.actor, e.reason) for e in engine.history(view.id)]
    assert history[-2:] == [
        (None, "running", "cancelled", "tester", "not needed"),
        ("work", "running", "cancelled", "tester", "cancelled: not needed"),
    ]


def test_retry_from_a_middle_step_reruns_it_and_what_follows_only(
    redis_cluster: Cluster, ledger: Path, tmp_path: Path
) -> None:
    engine = redis_cluster.engine
    engine.register(
        WorkflowBuilder("retrymid")
        .agent("a", "echo")
        .agent("b", "echo")
        .agent("c", "once")
        .agent("d", "echo")
    )
    metadata = {"ledger": str(ledger), "marker": str(tmp_path / "marker")}
    failed = redis_cluster.wait(engine.start("retrymid", metadata=metadata).id)
    assert failed.status == "failed" and failed.error is not None and failed.error["step"] == "c"
    engine.retry(failed.id, from_step="b", actor="tester")
    final = redis_cluster.wait(failed.id)
    assert final.status == "completed"
    calls = [line[1] for line in ledger_lines(ledger)]
    assert calls == ["a", "b", "c", "b", "c", "d"]
    attempts = {s.name: s.attempts for s in final.steps}
    assert attempts == {"a": 1, "b": 2, "c": 2, "d": 1}
    execution = [(e.to_status, e.actor, e.reason) for e in engine.history(final.id) if e.step_name is None]
    assert [status for status, _, _ in execution] == [
        "initialized",
        "running",
        "failed",
        "running",
        "completed",
    ]
    assert execution[3][1:] == ("tester", "retry from b")


def test_step_mode_runs_one_step_per_next_call(redis_cluster: Cluster, ledger: Path) -> None:
    engine = redis_cluster.engine
    engine.register(WorkflowBuilder("stepwise").agent("a", "echo").agent("b", "echo").agent("c", "echo"))
    view = engine.start("stepwise", metadata={"ledger": str(ledger)}, mode="step")
    assert engine.get(view.id).status == "waiting"
    for done, expected in enumerate(("a", "b", "c"), start=1):
        engine.next_step(view.id, actor="tester")
        settled = redis_cluster.wait(view.id)
        assert [line[1] for line in ledger_lines(ledger)] == ["a", "b", "c"][:done]
        assert settled.status == ("completed" if expected == "c" else "waiting")
    dispatched = [(e.step_name, e.actor) for e in engine.history(view.id) if e.reason == "next step"]
    assert dispatched == [("a", "tester"), ("b", "tester"), ("c", "tester")]


def test_human_step_refuses_invalid_data_then_continues_with_valid_data(redis_cluster: Cluster) -> None:
    engine = redis_cluster.engine
    schema = {"type": "object", "required": ["approved"], "properties": {"approved": {"type": "boolean"}}}
    engine.register(
        WorkflowBuilder("approval")
        .agent("draft", "echo")
        .human("approve", after="draft", input_schema=schema)
        .agent("publish", "echo", after="approve", when="steps.approve.approved")
    )
    waiting = redis_cluster.wait(engine.start("approval").id)
    assert waiting.status == "waiting"
    with pytest.raises(InputError):
        engine.complete_human_task(waiting.id, "approve", {"approved": "maybe"}, user_id="alice")
    assert engine.get(waiting.id).status == "waiting"
    engine.complete_human_task(waiting.id, "approve", {"approved": True}, user_id="alice")
    final = redis_cluster.wait(waiting.id)
    assert final.status == "completed" and redis_cluster.statuses(final.id)["publish"] == "succeeded"
    completion = [
        e for e in engine.history(final.id) if e.step_name == "approve" and e.to_status == "succeeded"
    ]
    assert [e.actor for e in completion] == ["alice"]


def test_a_timer_step_fires_after_its_delay(redis_cluster: Cluster) -> None:
    engine = redis_cluster.engine
    engine.register(
        WorkflowBuilder("nap")
        .agent("a", "echo")
        .timer("sleep", after="a", delay=2)
        .agent("b", "echo", after="sleep")
    )
    final = redis_cluster.wait(engine.start("nap").id)
    assert final.status == "completed"
    runs = {r["step_name"]: r for r in engine.logs(final.id)}
    from datetime import datetime

    slept = datetime.fromisoformat(runs["sleep"]["finished_at"]) - datetime.fromisoformat(
        runs["sleep"]["started_at"]
    )
    assert 1.9 <= slept.total_seconds() <= 4
    history = engine.history(final.id)
    timer = [(e.from_status, e.to_status, e.reason or "") for e in history if e.step_name == "sleep"]
    assert [(a, b) for a, b, _ in timer] == [(None, "waiting"), ("waiting", "succeeded")]
    assert timer[0][2].startswith("timer fires at") and timer[1][2] == "timer fired"
