"""Decisions on plain data: a unit decides from facts, with no database, and says what it lacks."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from workflow_engine.core.retry import FailureKind
from workflow_engine.decisions import control, delivery, steps
from workflow_engine.decisions.dispatch import task_id
from workflow_engine.decisions.facts import ATTEMPTS, OUTPUTS, RUNS, Facts, Missing
from workflow_engine.decisions.outcomes import Claim, Failure, Outcome, Success
from workflow_engine.decisions.unit import Unit
from workflow_engine.definitions import WorkflowBuilder, WorkflowDefinition, load_document
from workflow_engine.settings import Settings
from workflow_engine.store.records import ExecutionRecord, StepRunRecord

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
SETTINGS = Settings(database_url="sqlite://")


def record(definition: WorkflowDefinition, **values: Any) -> ExecutionRecord:
    fields: dict[str, Any] = {
        "id": "e1",
        "workflow_id": 1,
        "workflow_name": definition.name,
        "workflow_version": "1",
        "owner_id": 1,
        "status": "running",
        "mode": "auto",
        "input": {"n": 1},
        "metadata": {},
        "output": None,
        "error": None,
        "idempotency_key": None,
        "checkpoint": None,
        "barriers": None,
        "total_steps": len(definition.steps),
        "resolved_steps": 0,
        "active_steps": 1,
        "waiting_steps": 0,
        "retries": 0,
        "revision": 3,
        "created_at": NOW,
        "started_at": NOW,
        "finished_at": None,
        "updated_at": NOW,
    }
    return ExecutionRecord(**{**fields, **values})


def run(step: str, status: str, run_id: int, attempt: int = 1, **values: Any) -> StepRunRecord:
    fields: dict[str, Any] = {
        "id": run_id,
        "execution_id": "e1",
        "step_name": step,
        "step_type": "agent",
        "agent": step,
        "attempt": attempt,
        "status": status,
        "superseded": False,
        "timeout": None,
        "input": None,
        "output": None,
        "error_type": None,
        "error_message": None,
        "error_code": None,
        "worker": None,
        "task_id": None,
        "checkpoint": None,
        "completed_by": None,
        "queued_at": NOW - timedelta(seconds=10 - run_id),
        "not_before": None,
        "published_at": NOW,
        "started_at": None,
        "heartbeat_at": None,
        "deadline_at": None,
        "finished_at": None,
        "duration_ms": None,
    }
    return StepRunRecord(**{**fields, **values})


def claim_of(definition: WorkflowDefinition, step: str, attempt: int = 1) -> Claim:
    return Claim(
        run_id=1,
        execution_id="e1",
        workflow=definition.name,
        version="1",
        workflow_id=1,
        step=definition.step(step),
        attempt=attempt,
        input={"n": 1},
        metadata={},
        checkpoint=None,
        worker="w1",
        retries=0,
        due_at=NOW,
        started_at=NOW,
    )


def deciding_outcome(
    definition: WorkflowDefinition, facts: Facts, step: str, outcome: Outcome, seed: int = 5
) -> tuple[Unit, str, list[Missing]]:
    """Decide what follows ``outcome`` of ``step``, loading from ``facts.runs`` and ``outputs``
    given as the database would; what it asked for, in order."""
    asked: list[Missing] = []
    everything = {
        OUTPUTS: dict(facts.outputs),
        RUNS: facts.runs or (),
        ATTEMPTS: facts.attempts or {},
    }

    def load(missing: Missing) -> Any:
        asked.append(missing)
        found = everything[missing.what]
        if missing.what == OUTPUTS and missing.names is not None:
            return {name: value for name, value in found.items() if name in missing.names}
        return found

    start = replace(facts, outputs={}, outputs_of=frozenset(), runs=None, attempts=None)
    status, _ = steps.attempt_values(outcome, NOW)

    def make(known: Facts, rng: Any) -> Unit:
        return Unit(known, definition, SETTINGS, "w1", rng)

    def act(unit: Unit) -> str:
        return steps.after_attempt(unit, claim_of(definition, step), outcome, status)

    unit, result = steps.decide(start, make, act, load, seed)
    return unit, result, asked


def test_a_success_in_a_chain_opens_the_next_step_without_reading_anything() -> None:
    chain = WorkflowBuilder("chain").agent("a").agent("b", after="a").build()
    facts = Facts(NOW, record(chain))
    unit, result, asked = deciding_outcome(chain, facts, "a", Success({"x": 1}, 5))
    assert (result, asked) == ("succeeded", [])
    assert [(row["step_name"], row["status"], row["published_at"]) for row in unit.new] == [
        ("b", "queued", NOW)
    ]
    assert unit.runs.changes == [] and unit.take is None
    assert unit.row_values() == {
        "status": "running",
        "active_steps": 1,
        "waiting_steps": 0,
        "resolved_steps": 1,
        "retries": 0,
        "updated_at": NOW,
        "checkpoint": {"last_completed_step": "a"},
    }
    assert [(e["step_name"], e["from_status"], e["to_status"]) for e in unit.events] == [
        ("a", "running", "succeeded"),
        ("b", None, "queued"),
    ]
    assert unit.dispatches == []  # the run has no id until it is written
    unit.inserted([41])
    assert [(d.run_id, d.step) for d in unit.dispatches] == [(41, "b")]


def test_the_last_success_completes_the_execution_with_the_outputs_of_its_last_steps() -> None:
    both = WorkflowBuilder("both").agent("s").agent("a", after="s").agent("b", after="s").build()
    facts = Facts(NOW, record(both, resolved_steps=2), outputs={"a": {"from": "a"}})
    unit, _, asked = deciding_outcome(both, facts, "b", Success({"from": "b"}, 5))
    # b's output is known: it was just given
    assert [(m.what, m.names) for m in asked] == [(OUTPUTS, frozenset({"a"}))]
    assert unit.status == "completed"
    assert unit.changes["output"] == {"a": {"from": "a"}, "b": {"from": "b"}}


def test_a_condition_on_an_earlier_output_asks_for_that_output_only() -> None:
    branch = (
        WorkflowBuilder("branch")
        .agent("a")
        .agent("b", after="a")
        .agent("big", after="b", when="steps.a.size > 10")
        .agent("small", after="b", when="steps.a.size <= 10")
        .build()
    )
    facts = Facts(NOW, record(branch, resolved_steps=1), outputs={"a": {"size": 3}})
    unit, _, asked = deciding_outcome(branch, facts, "b", Success({}, 5))
    assert [(m.what, m.names) for m in asked] == [(OUTPUTS, frozenset({"a"}))]
    assert sorted((row["step_name"], row["status"]) for row in unit.new) == [
        ("big", "skipped"),
        ("small", "queued"),
    ]


def test_a_transient_failure_counts_earlier_failures_from_the_runs() -> None:
    chain = WorkflowBuilder("chain").agent("a", retry={"max_attempts": 3}).build()
    failed = run("a", "failed", 1, error_type="Boom")
    facts = Facts(NOW, record(chain), runs=(failed,))
    failure = Failure(FailureKind.TRANSIENT, "Boom", "down", 5)
    unit, result, asked = deciding_outcome(chain, facts, "a", failure, seed=11)
    assert result == "retrying" and [m.what for m in asked] == [RUNS]
    [retry] = unit.new
    assert (retry["attempt"], retry["status"]) == (2, "retrying")
    assert retry["not_before"] > NOW
    # the budget is spent when every allowed attempt failed
    spent = Facts(
        NOW, record(chain), runs=(failed, run("a", "failed", 2, attempt=2), run("a", "failed", 3, 3))
    )
    unit, result, _ = deciding_outcome(chain, spent, "a", failure)
    assert result == "failed" and unit.status == "failed" and unit.new == []


def test_a_verb_decides_on_the_runs_it_is_given_and_lists_what_it_changes() -> None:
    fan = WorkflowBuilder("fan").agent("s").agent("a", after="s").agent("b", after="s").build()
    runs = (
        run("s", "succeeded", 3),
        run("a", "running", 4, worker="w1", task_id="t-a"),
        run("b", "queued", 5),
    )
    unit = Unit(Facts(NOW, record(fan, active_steps=2, resolved_steps=1), runs=runs), fan, SETTINGS, "ops")
    control.cancel(unit, "no longer needed")
    delivery.conclude(unit)
    assert unit.status == "cancelled"
    [change] = unit.runs.changes
    assert (change.ids, change.values["status"]) == ((4, 5), "cancelled")
    assert {"running", "queued"} <= set(change.expect)
    assert unit.revocations == [("t-a", True), (task_id("e1", "b", 1), False)]
    assert unit.counts == {"active": 0, "waiting": 0, "resolved": 1}


def test_a_verb_that_was_given_no_runs_asks_for_them() -> None:
    fan = WorkflowBuilder("fan").agent("a").build()
    unit = Unit(Facts(NOW, record(fan)), fan, SETTINGS, "ops")
    with pytest.raises(Missing) as asked:
        control.pause(unit)
    assert asked.value.what == RUNS


def test_a_retry_after_a_reset_asks_for_the_attempts_so_far() -> None:
    chain = WorkflowBuilder("chain").agent("a").agent("b", after="a").build()
    facts = Facts(NOW, record(chain, retries=1))
    unit, _, asked_for = deciding_outcome(
        chain, replace(facts, attempts={"a": 2, "b": 1}), "a", Success({}, 1)
    )
    assert [m.what for m in asked_for] == [ATTEMPTS]
    assert [(row["step_name"], row["attempt"]) for row in unit.new] == [("b", 2)]


def test_every_round_of_a_decision_draws_the_same_random_numbers() -> None:
    chain = WorkflowBuilder("chain").agent("a").build()
    drawn: list[float] = []

    def act(unit: Unit) -> None:
        drawn.append(unit.rng.random())  # a backoff's jitter, drawn before the decision asks
        unit.runs.current()

    def make(facts: Facts, rng: Any) -> Unit:
        return Unit(facts, chain, SETTINGS, "w1", rng)

    steps.decide(Facts(NOW, record(chain)), make, act, lambda missing: (), seed=7)
    assert len(drawn) == 2 and drawn[0] == drawn[1]


def test_a_decision_that_reads_many_outputs_asks_twice_at_most() -> None:
    builder = WorkflowBuilder("timers").agent("start")
    for i in range(12):
        builder.agent(f"p{i}", after="start")
    builder.agent("a", after=[f"p{i}" for i in range(12)])
    for i in range(12):
        builder.timer(f"t{i}", until=f"steps.p{i}.at", after="a")
    timers = builder.build()
    outputs = {f"p{i}": {"at": f"2026-12-0{3 + i % 5}T00:00:00"} for i in range(12)}
    facts = Facts(NOW, record(timers, resolved_steps=13), outputs=outputs)
    unit, _, asked = deciding_outcome(timers, facts, "a", Success({}, 1))
    assert [(m.what, m.names is None) for m in asked] == [(OUTPUTS, False), (OUTPUTS, True)]
    fires = sorted(row["not_before"] for row in unit.new)
    assert len(fires) == 12 and fires[0] == datetime(2026, 12, 3, tzinfo=UTC)


def test_the_runs_a_decision_leaves_include_those_it_creates_and_exclude_those_it_resets() -> None:
    fan = WorkflowBuilder("fan").agent("s").agent("a", after="s").agent("b", after="s").build()
    stored = (run("s", "succeeded", 3), run("a", "failed", 4), run("a", "queued", 5, attempt=2))
    unit = Unit(Facts(NOW, record(fan), runs=stored), fan, SETTINGS, "ops")
    unit.open(["b"])
    [new] = unit.runs.in_states(("queued",))[1:]
    assert (new.id, new.step_name) == (-1, "b")
    assert {name: r.attempt for name, r in unit.runs.current().items()} == {"s": 1, "a": 2, "b": 1}
    assert unit.runs.failures("a", "worker_lost") == (1, 0)
    assert unit.runs.update(-1, {"status": "cancelled"}, ("queued",))
    assert unit.new[0]["status"] == "cancelled" and unit.runs.changes == []  # a new run is written as decided
    assert not unit.runs.update(5, {"status": "queued"}, ("pending",))  # not in the state expected
    unit.runs.supersede({"a"})
    assert unit.runs.find(5) is None and set(unit.runs.current()) == {"s", "b"}
    assert unit.runs.superseded == {"a"}


@pytest.mark.parametrize(
    ("status", "mode", "reason"),
    [("paused", "auto", "held: execution paused"), ("running", "step", "held: step mode")],
)
def test_a_held_run_says_why(status: str, mode: str, reason: str) -> None:
    chain = WorkflowBuilder("chain").agent("a").agent("b", after="a").build()
    unit = Unit(Facts(NOW, record(chain, status=status, mode=mode)), chain, SETTINGS, "w1")
    unit.open(["b"])
    assert [(e["step_name"], e["to_status"], e["reason"]) for e in unit.events] == [("b", "pending", reason)]
    assert not unit.dispatches


def test_a_new_run_says_what_it_waits_for() -> None:
    steps = (
        WorkflowBuilder("kinds")
        .human("h", assignees=["ann"])
        .timer("t", delay=30)
        .wait("w", signal="paid", timeout=60)
        .agent("a")
        .build()
    )
    unit = Unit(Facts(NOW, record(steps), signals={"paid": ()}), steps, SETTINGS, "w1")
    unit.open(["h", "t", "w", "a"])
    reasons = {e["step_name"]: e["reason"] for e in unit.events}
    assert reasons == {
        "h": "human task for ann",
        "t": f"timer fires at {(NOW + timedelta(seconds=30)).isoformat()}",
        "w": f"waiting for signal 'paid' until {(NOW + timedelta(seconds=60)).isoformat()}",
        "a": None,
    }



SHOP = load_document(
    {
        "name": "shop",
        "steps": [
            {"name": "a", "agent": "a"},
            {
                "name": "t",
                "type": "task",
                "task": "shop.charge",
                "args": ["steps.a.total", "input.n"],
                "kwargs": {"currency": "metadata.currency"},
            },
            {"name": "own", "type": "task", "task": "shop.charge", "retry": {"max_attempts": 2}},
        ],
        "edges": [{"from": "a", "to": "t"}, {"from": "a", "to": "own"}],
    }
)


def test_a_task_step_is_given_its_arguments_evaluated_when_it_opens() -> None:
    facts = Facts(NOW, record(SHOP, metadata={"currency": "EUR"}))
    unit, result, asked = deciding_outcome(SHOP, facts, "a", Success({"total": 12}, 3))
    assert result == "succeeded" and asked == []  # (the output it reads is the one just recorded)
    [opened] = [row for row in unit.new if row["step_name"] == "t"]
    assert (opened["step_name"], opened["step_type"], opened["status"]) == ("t", "task", "queued")
    assert opened["input"] == {"args": [12, 1], "kwargs": {"currency": "EUR"}}
    assert opened["published_at"] == NOW  # (in the outbox: its message goes once it is written)


def test_a_task_step_whose_arguments_cannot_be_evaluated_fails() -> None:
    facts = Facts(NOW, record(SHOP))
    unit, _, _ = deciding_outcome(SHOP, facts, "a", Success({"total": 12}, 3))  # (no metadata.currency)
    [opened] = [row for row in unit.new if row["step_name"] == "t"]
    assert (opened["status"], opened["error_type"]) == ("failed", "expression")
    assert unit.status == "failed" and unit.changes["error"]["message"].startswith("kwargs.currency: ")


def test_a_task_step_retries_when_its_task_asks_and_only_then() -> None:
    facts = Facts(NOW, record(SHOP, status="running"), runs=(run("t", "failed", 1),))
    asked_again = Failure(FailureKind.TRANSIENT, "transient", "asked to be retried", 5, retry_in=7)
    unit, result, _ = deciding_outcome(SHOP, facts, "t", asked_again)
    [retry] = unit.new
    assert result == "retrying" and retry["not_before"] == NOW + timedelta(seconds=7)
    # a transient failure its task did not retry (no retry_in) is not retried by the engine's policy
    unit, result, _ = deciding_outcome(SHOP, facts, "t", Failure(FailureKind.TRANSIENT, "timeout", "late", 5))
    assert result == "failed" and unit.new == []


def test_a_task_step_with_its_own_retry_policy_keeps_it() -> None:
    spent = Facts(NOW, record(SHOP), runs=(run("own", "failed", 1), run("own", "failed", 2, attempt=2)))
    failure = Failure(FailureKind.TRANSIENT, "transient", "asked", 5, retry_in=7)
    unit, result, _ = deciding_outcome(SHOP, spent, "own", failure)
    assert result == "failed" and unit.new == []
