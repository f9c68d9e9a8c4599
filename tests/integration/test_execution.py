"""Executions on real processes: `wfe worker` + `wfe coordinator`, Redis broker, PostgreSQL (the
core scenarios also on the embedded default: SQLite and the filesystem transport)."""

from __future__ import annotations

import itertools
import signal
import time
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa
from celery import Celery

from tests.integration.conftest import Cluster, ledger_lines, messages_in_flight, sleeping_fan
from workflow_engine.decisions.dispatch import task_id
from workflow_engine.definitions import WorkflowBuilder
from workflow_engine.store import schema as t

pytestmark = pytest.mark.slow


def test_sequential_steps_complete_in_order(redis_cluster: Cluster, ledger: Path) -> None:
    engine = redis_cluster.engine
    engine.register(WorkflowBuilder("seq").agent("a", "echo").agent("b", "echo").agent("c", "echo"))
    view = engine.start("seq", metadata={"ledger": str(ledger)})
    final = redis_cluster.wait(view.id)
    assert final.status == "completed", final
    assert [line[1] for line in ledger_lines(ledger)] == ["a", "b", "c"]
    assert final.output == {"c": {"step": "c", "attempt": 1}}
    runs = engine.logs(view.id)
    assert all(run["worker"] for run in runs) and all(run["duration_ms"] is not None for run in runs)


def test_fan_out_runs_branches_in_parallel_and_the_join_exactly_once(
    driver_cluster: Cluster, ledger: Path
) -> None:
    engine = driver_cluster.engine
    seconds = 0.5
    builder, branches = sleeping_fan("fanjoin", 6, seconds)
    engine.register(builder)
    view = engine.start("fanjoin", metadata={"ledger": str(ledger)})
    final = driver_cluster.wait(view.id)
    assert final.status == "completed"
    calls = [line[1] for line in ledger_lines(ledger)]
    assert calls.count("join") == 1 and sorted(calls) == sorted(["start", *branches, "join"])
    assert calls[-1] == "join"
    # each branch writes its line as it begins, then sleeps: branches run one after another
    # would begin at least ``seconds`` apart; overlapping ones begin closer, in two processes
    began = sorted((float(line[4]), line[3]) for line in ledger_lines(ledger) if line[1] in branches)
    overlapping = [(a, b) for a, b in itertools.pairwise(began) if b[0] - a[0] < seconds * 0.8]
    assert overlapping and all(a[1] != b[1] for a, b in overlapping), began
    assert len({pid for _, pid in began}) == 2  # both pool processes took branches


def test_conditional_edges_skip_the_branch_not_taken(redis_cluster: Cluster) -> None:
    engine = redis_cluster.engine
    engine.register(
        WorkflowBuilder("cond")
        .agent("review", "score")
        .agent("approve", "echo", after="review", when="steps.review.score >= 80")
        .agent("reject", "echo", after="review", when="steps.review.score < 80")
    )
    final = redis_cluster.wait(engine.start("cond", {"score": 42}).id)
    assert {s.name: s.status for s in final.steps} == {
        "review": "succeeded",
        "approve": "skipped",
        "reject": "succeeded",
    }


def test_optional_step_failure_does_not_fail_the_workflow(redis_cluster: Cluster) -> None:
    engine = redis_cluster.engine
    engine.register(
        WorkflowBuilder("optional").agent("a", "echo").agent("b", "fatal", required=False).agent("c", "echo")
    )
    final = redis_cluster.wait(engine.start("optional").id)
    assert final.status == "completed"
    assert {s.name: s.status for s in final.steps} == {"a": "succeeded", "b": "failed", "c": "succeeded"}


def test_transient_failures_are_retried_with_backoff_spacing(core_cluster: Cluster) -> None:
    engine = core_cluster.engine
    retry = {"max_attempts": 3, "initial_delay": 1, "factor": 2, "jitter": 0.1}
    engine.register(WorkflowBuilder("backoff").agent("a", "flaky", config={"fail_times": 2}, retry=retry))
    final = core_cluster.wait(engine.start("backoff").id)
    assert final.status == "completed"
    runs = engine.logs(final.id)
    assert [(r["attempt"], r["status"]) for r in runs] == [(1, "failed"), (2, "failed"), (3, "succeeded")]
    from datetime import datetime

    started = [datetime.fromisoformat(r["started_at"]) for r in runs]
    finished = [datetime.fromisoformat(r["finished_at"]) for r in runs]
    gaps = [(started[i + 1] - finished[i]).total_seconds() for i in range(2)]
    # 1 s then 2 s (jitter 10 %), plus whatever a loaded machine adds to the hop
    assert 0.9 <= gaps[0] <= 2.2, gaps
    assert 1.8 <= gaps[1] <= 3.4, gaps


def test_validation_error_puts_the_execution_in_waiting(core_cluster: Cluster) -> None:
    engine = core_cluster.engine
    engine.register(WorkflowBuilder("needsfix").agent("a", "echo").agent("b", "invalid").agent("c", "echo"))
    final = core_cluster.wait(engine.start("needsfix").id)
    assert final.status == "waiting"
    b = next(s for s in final.steps if s.name == "b")
    assert (
        b.status == "waiting" and b.attempts == 1 and b.error is not None and b.error["type"] == "validation"
    )


def test_fatal_error_fails_after_one_attempt(core_cluster: Cluster) -> None:
    engine = core_cluster.engine
    engine.register(
        WorkflowBuilder("fatal").agent("a", "fatal", retry={"max_attempts": 5}).agent("b", "echo")
    )
    final = core_cluster.wait(engine.start("fatal").id)
    assert final.status == "failed"
    assert final.error == {"step": "a", "type": "fatal", "message": "cannot go on", "code": "BROKEN"}
    assert len(engine.logs(final.id)) == 1


def test_a_step_past_its_timeout_fails_with_a_timeout_error(core_cluster: Cluster) -> None:
    engine = core_cluster.engine
    engine.register(
        WorkflowBuilder("timeout").agent(
            "a", "stubborn", timeout=1, config={"seconds": 20}, retry={"max_attempts": 1}
        )
    )
    began = time.monotonic()
    final = core_cluster.wait(engine.start("timeout").id, timeout=30)
    assert final.status == "failed" and time.monotonic() - began < 15
    assert final.error is not None and final.error["type"] == "timeout"


def test_the_same_idempotency_key_starts_one_execution(redis_cluster: Cluster) -> None:
    engine = redis_cluster.engine
    engine.register(WorkflowBuilder("idem").agent("a", "echo"))
    first = engine.start("idem", idempotency_key="order-42")
    second = engine.start("idem", idempotency_key="order-42")
    assert first.id == second.id
    assert redis_cluster.wait(first.id).status == "completed"
    _, total = engine.executions(
        __import__("workflow_engine.store.listing", fromlist=["ExecutionQuery"]).ExecutionQuery(
            workflow="idem"
        )
    )
    assert total == 1


def test_a_plain_celery_client_can_start_a_workflow(redis_cluster: Cluster) -> None:
    engine = redis_cluster.engine
    engine.register(WorkflowBuilder("remote").agent("a", "echo"))
    settings = redis_cluster.settings
    client = Celery("other-service", broker=settings.broker_url)
    client.conf.broker_transport_options = settings.broker_transport_options
    client.conf.task_default_queue = settings.intake_queue  # another service's own default queue
    try:
        client.send_task(
            "wfe.start_workflow",
            kwargs={"workflow": "remote", "input_data": {"n": 1}, "idempotency_key": "remote-1"},
        )
        client.send_task("wfe.start_workflow", kwargs={"workflow": "remote", "idempotency_key": "remote-1"})

        def started() -> bool:
            return engine.executions()[1] > 0 and any(v.workflow == "remote" for v in engine.executions()[0])

        redis_cluster.wait_for(started, what="the remote start")
        view = next(v for v in engine.executions()[0] if v.workflow == "remote")
        assert redis_cluster.wait(view.id).status == "completed"
        queues = [settings.intake_queue, settings.coordinator_queue]
        redis_cluster.wait_for(
            lambda: messages_in_flight(settings, "wfe.start_workflow", queues) == 0,
            what="both start messages handled",
        )
        assert sum(1 for v in engine.executions()[0] if v.workflow == "remote") == 1
    finally:
        client.close()


def test_a_hundred_concurrent_executions_all_complete(redis_cluster: Cluster) -> None:
    engine = redis_cluster.engine
    engine.register(WorkflowBuilder("many").agent("a", "echo").agent("b", "echo").agent("c", "echo"))
    ids = [engine.start("many", {"i": i}).id for i in range(100)]
    for execution_id in ids:
        assert redis_cluster.wait(execution_id, timeout=120).status == "completed"


def test_a_worker_killed_mid_step_does_not_stop_the_execution(redis_cluster: Cluster, ledger: Path) -> None:
    engine = redis_cluster.engine
    engine.register(
        WorkflowBuilder("survivor")
        .agent("a", "echo")
        .agent("b", "slow", config={"seconds": 3})
        .agent("c", "echo")
    )
    view = engine.start("survivor", metadata={"ledger": str(ledger)})
    redis_cluster.wait_for(
        lambda: redis_cluster.step_status(view.id, "b") == "running", what="step b running"
    )
    victim = next(p for p in redis_cluster.processes.processes if p.name == "worker0")
    victim.signal(signal.SIGKILL)  # the worker and its pool, mid-step, no goodbye
    victim.popen.wait(10)  # type: ignore[union-attr]
    replacement = redis_cluster.processes.start_worker("worker0b")
    try:
        final = redis_cluster.wait(view.id, timeout=60)
        assert final.status == "completed"
        b_runs = [r for r in engine.logs(view.id) if r["step_name"] == "b"]
        assert [r["error_type"] for r in b_runs] == ["worker_lost", None]
        assert [line[1] for line in ledger_lines(ledger)].count("b") == 2  # at least once: twice here
    finally:
        assert replacement.alive()


def test_a_worker_killed_while_carrying_a_wide_fan_out_leaves_no_branch_behind(
    redis_cluster: Cluster, ledger: Path
) -> None:
    """Two pool processes, twelve branches: two go by message, ten are carried by the workers
    recording their siblings. The worker is killed with branches running and others carried;
    the lost attempts run again and the carried branches are taken by the new worker."""
    engine = redis_cluster.engine
    builder, branches = sleeping_fan("carried", 12, 0.3)
    engine.register(builder)
    view = engine.start("carried", metadata={"ledger": str(ledger)})
    redis_cluster.wait_for(
        lambda: list(redis_cluster.statuses(view.id).values()).count("succeeded") >= 4,
        what="a few branches done",
    )
    [victim] = [p for p in redis_cluster.processes.processes if p.name.startswith("worker") and p.alive()]
    victim.signal(signal.SIGKILL)  # the worker and its pool, with branches running and carried
    victim.popen.wait(10)  # type: ignore[union-attr]
    runs = t.step_runs
    with engine.store.reading() as connection:
        carried = connection.execute(
            sa.select(runs.c.step_name, runs.c.attempt, runs.c.task_id).where(runs.c.execution_id == view.id)
        ).all()
        waiting = connection.execute(
            sa.select(sa.func.count()).where(runs.c.execution_id == view.id, runs.c.carried)
        ).scalar_one()
    assert waiting > 0  # carried branches nobody took yet: no message of their own
    # the branches taken so far ran in place, in the task of the carrier that took them
    in_place = [name for name, attempt, task in carried if task and task != task_id(view.id, name, attempt)]
    assert set(in_place) & set(branches), carried
    replacement = redis_cluster.processes.start_worker("worker0c")
    try:
        final = redis_cluster.wait(view.id, timeout=90)
        assert final.status == "completed"
        runs = engine.logs(view.id)
        assert {r["step_name"] for r in runs if r["status"] == "succeeded"} == {"start", *branches, "join"}
        lost = [r for r in runs if r["error_type"] == "worker_lost"]
        assert lost and all(r["step_name"] in branches for r in lost)
        calls = Counter(line[1] for line in ledger_lines(ledger))
        assert calls["join"] == 1 and all(calls[b] >= 1 for b in branches)
    finally:
        assert replacement.alive()


def test_subscribers_see_the_transitions_written_by_worker_processes(driver_cluster: Cluster) -> None:
    engine = driver_cluster.engine
    engine.register(WorkflowBuilder("observed").agent("a", "echo").agent("b", "echo"))
    seen: list[dict[str, object]] = []
    unsubscribe = engine.subscribe(seen.append)
    try:
        view = engine.start("observed")
        assert driver_cluster.wait(view.id).status == "completed"
        stored = [(e.step_name, e.to_status) for e in engine.history(view.id)]
        driver_cluster.wait_for(
            lambda: len([e for e in seen if e["execution_id"] == view.id]) == len(stored), what="every event"
        )
    finally:
        unsubscribe()
    mine = [(e["step_name"], e["to_status"]) for e in seen if e["execution_id"] == view.id]
    assert Counter(mine) == Counter(stored)  # each once (the order of commits may differ from ids)
    assert ("a", "running") in mine and ("b", "succeeded") in mine  # written by the worker
