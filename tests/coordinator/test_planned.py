"""Outcomes of steps run in place, planned against the row the previous outcome wrote.

On PostgreSQL such an outcome is one statement, done only if the execution's row is still at
the revision the plan was made against; otherwise, or when the plan has to read, the outcome is
decided under the lock as any other. The behaviour is the same on SQLite, which always locks.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa

from tests.support.harness import Harness
from workflow_engine.agents import AgentContext
from workflow_engine.decisions.runs import new_execution
from workflow_engine.definitions import WorkflowBuilder
from workflow_engine.store.seam import Unsupported


@contextmanager
def outcome_statements(harness: Harness) -> Iterator[list[str]]:
    """The outcome statements sent to PostgreSQL meanwhile: "planned" or "locked" (and
    "started", "child started" for an execution started in one statement)."""
    sent: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "EXECUTE wfe_finish_optimistic(" in statement:
            sent.append("planned")
        elif "EXECUTE wfe_finish(" in statement:
            sent.append("locked")
        elif "EXECUTE wfe_start_child(" in statement:
            sent.append("child started")
        elif "EXECUTE wfe_start(" in statement:
            sent.append("started")

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", record)


def chain(name: str, *steps: str) -> WorkflowBuilder:
    builder = WorkflowBuilder(name)
    for step in steps:
        builder.agent(step)
    return builder


def test_a_step_run_in_place_records_its_outcome_in_one_statement(harness: Harness) -> None:
    harness.inline_steps = 3
    harness.register(chain("planned", "a", "b", "c", "d", "e"))
    with outcome_statements(harness) as sent:
        view = harness.run("planned")
    assert view.status == "completed"
    assert [(r.step_name, r.status, r.output) for r in harness.runs(view.id)] == [
        (name, "succeeded", {"step": name}) for name in "abcde"
    ]
    assert all(r.finished_at is not None and r.duration_ms is not None for r in harness.runs(view.id))
    assert view.output == {"e": {"step": "e"}}
    # every transition is in the history, in order, whichever way it was written
    assert [(step, to) for step, _, to in harness.history(view.id) if step == "c"] == [
        ("c", "queued"),
        ("c", "running"),
        ("c", "succeeded"),
    ]
    record = harness.store.get_execution(view.id)
    assert record.revision == 6  # written by the start, then by each of the five outcomes
    if harness.store.dialect == "postgresql":
        # it started in one statement; a and e came by message (their outcome locks); b, c, d
        # ran in place after a
        assert sent == ["started", "locked", "planned", "planned", "planned", "locked"]


def test_a_pause_while_the_step_runs_is_not_overwritten_by_the_plan(harness: Harness) -> None:
    harness.inline_steps = 5

    def pause_meanwhile(ctx: AgentContext) -> dict[str, Any]:
        harness.coordinator.pause(ctx.execution_id, "operator", reason="look first")
        return {"paused": True}

    harness.agent("b", pause_meanwhile)
    harness.register(chain("paused", "a", "b", "c"))
    record = harness.start("paused")
    with outcome_statements(harness) as sent:
        harness.work()
    view = harness.view(record.id)
    assert view.status == "paused"
    assert harness.statuses(record.id) == {"a": "succeeded", "b": "succeeded", "c": "pending"}
    assert [name for name, _ in harness.calls] == ["a", "b"]
    if harness.store.dialect == "postgresql":
        # b's plan was made before the pause moved the row on: refused, then decided locked
        assert sent == ["locked", "planned", "locked"]
    harness.coordinator.resume(record.id, "operator")
    harness.work()
    assert harness.view(record.id).status == "completed"


def test_a_cancel_while_the_step_runs_discards_its_outcome(harness: Harness) -> None:
    harness.inline_steps = 5

    def cancelled_meanwhile(ctx: AgentContext) -> dict[str, Any]:
        harness.coordinator.cancel(ctx.execution_id, "operator")
        return {"late": True}

    harness.agent("b", cancelled_meanwhile)
    harness.register(chain("cancelled", "a", "b", "c"))
    view = harness.run("cancelled")
    assert view.status == "cancelled"
    assert [(r.step_name, r.status) for r in harness.runs(view.id)] == [
        ("a", "succeeded"),
        ("b", "cancelled"),
    ]
    [b] = harness.runs(view.id, "b")
    assert b.output is None  # the late result was not recorded over the cancel


def test_a_plan_that_must_read_is_decided_under_the_lock(harness: Harness) -> None:
    harness.inline_steps = 5
    harness.agent("a", lambda ctx: {"go": True})
    harness.register(
        WorkflowBuilder("reads")
        .agent("a")
        .agent("b", after="a")
        .agent("c", after="b", when="steps.a.go")  # a's output is not in b's plan: it is read
        .agent("d", after="c")
    )
    with outcome_statements(harness) as sent:
        view = harness.run("reads")
    assert view.status == "completed"
    assert [name for name, _ in harness.calls] == ["a", "b", "c", "d"]
    if harness.store.dialect == "postgresql":
        assert sent == ["started", "locked", "locked", "planned", "planned"]


def test_any_update_of_the_row_moves_its_revision_on(harness: Harness) -> None:
    """The database moves it, so a writer that does not know of it (a process of an earlier
    release, during a rolling upgrade) cannot leave a plan believing the row unchanged."""
    harness.register(chain("moved", "a"))
    record = harness.start("moved")
    executions = sa.table("wfe_executions", sa.column("id"), sa.column("status"))
    with harness.store.transaction() as tx:
        tx.execute(sa.update(executions).where(executions.c.id == record.id).values(status="paused"))
    after = harness.store.get_execution(record.id)
    assert (after.status, after.revision) == ("paused", record.revision + 1)


def parent_and_child(harness: Harness, last: Any = None) -> None:
    """parent: begin → sub (a child of c1 → c2, whose agent ``last`` is c2's) → end."""
    if last is not None:
        harness.agent("c2", last)
    harness.register(chain("kid", "c1", "c2"))
    harness.register(
        WorkflowBuilder("parent")
        .agent("begin")
        .workflow("sub", "kid", after="begin")
        .agent("end", after="sub")
    )


def test_a_child_run_in_place_starts_and_ends_in_one_statement_each(harness: Harness) -> None:
    harness.inline_steps = 5
    parent_and_child(harness)
    with outcome_statements(harness) as sent:
        view = harness.run("parent")
    assert view.status == "completed"
    (child,) = harness.store.children(view.id)
    assert child.status == "completed" and child.revision == 3  # its start, then c1's and c2's outcomes
    assert harness.statuses(view.id) == {"begin": "succeeded", "sub": "succeeded", "end": "succeeded"}
    [sub] = harness.runs(view.id, "sub")
    assert sub.output == {"c2": {"step": "c2"}} and sub.duration_ms is not None and sub.worker is None
    reasons = [(e.to_status, e.reason) for e in harness.store.events(view.id) if e.step_name == "sub"]
    assert reasons == [
        ("running", None),
        ("succeeded", f"child execution {child.id} (kid 1.0.0) completed"),
    ]
    assert [name for name, _ in harness.calls] == ["begin", "c1", "c2", "end"]
    if harness.store.dialect == "postgresql":
        # begin came by message; the child starts from its decision, runs in place, and its end
        # is the outcome of the parent's run that waits for it (end is published: it locks)
        assert sent == ["started", "locked", "child started", "planned", "planned", "planned", "locked"]


def test_a_pause_of_the_parent_while_its_child_ends_is_not_overwritten(harness: Harness) -> None:
    harness.inline_steps = 5

    def pause_parent(ctx: AgentContext) -> dict[str, Any]:
        child = harness.store.get_execution(ctx.execution_id)
        assert child.parent_execution_id is not None
        harness.coordinator.pause(child.parent_execution_id, "operator", reason="look first")
        return {"paused": True}

    parent_and_child(harness, pause_parent)
    record = harness.start("parent")
    with outcome_statements(harness) as sent:
        harness.work()
    assert harness.view(record.id).status == "paused"
    assert harness.statuses(record.id) == {"begin": "succeeded", "sub": "succeeded", "end": "pending"}
    if harness.store.dialect == "postgresql":
        # c2's outcome was planned against its row before the pause reached the child, and the
        # child's end against its parent's row before the pause: each refused, then decided under
        # the lock (the child's end by a locked decision on its parent, not an outcome statement)
        assert sent == ["locked", "child started", "planned", "planned", "locked", "planned"]
    harness.coordinator.resume(record.id, "operator")
    harness.work()
    assert harness.view(record.id).status == "completed"


def test_a_child_starts_in_one_statement_only_while_its_parent_runs_and_its_run_waits(
    harness: Harness,
) -> None:
    harness.register(WorkflowBuilder("waits").human("ask", assignees=["ann"]))
    harness.register(WorkflowBuilder("parent").agent("begin").workflow("sub", "waits", after="begin"))
    record = harness.start("parent")
    harness.work()
    parent = harness.store.get_execution(record.id)
    [begin], [sub] = harness.runs(record.id, "begin"), harness.runs(record.id, "sub")
    assert (parent.status, sub.status) == ("running", "running")
    workflow = harness.store.get_workflow("waits")

    def row(child_id: str) -> dict[str, Any]:
        values = new_execution(child_id, workflow, parent.owner_id, "auto", {}, {}, None, harness.clock.now())
        values.update(parent_execution_id=record.id, parent_step="sub", depth=1, status="running")
        return values

    def start(child_id: str, run_id: int) -> bool | None:
        with harness.store.optimistic() as plan:
            return (
                None if isinstance(plan, Unsupported) else plan.start(row(child_id), {}, ([], [], []), run_id)
            )

    if harness.store.dialect != "postgresql":
        assert start("c-1", sub.id) is None  # one round trip costs little here: no plan
        return
    assert start("c-1", sub.id) is True
    assert start("c-1", sub.id) is False  # started once
    assert start("c-2", begin.id) is False  # that run does not wait for a child
    harness.coordinator.pause(record.id, "operator")
    assert start("c-3", sub.id) is False  # the parent no longer runs
    started = {c.id for c in harness.store.children(record.id)}
    assert "c-1" in started and not started & {"c-2", "c-3"}


def test_an_execution_starts_in_one_statement_and_a_key_used_already_answers_the_first(
    harness: Harness,
) -> None:
    harness.register(chain("once", "a", "b"))
    with outcome_statements(harness) as sent:
        first = harness.start("once", idempotency_key="k-1", input_data={"n": 1})
        again = harness.start("once", idempotency_key="k-1", input_data={"n": 1})
    assert again.id == first.id
    assert first == harness.store.get_execution(first.id)  # as it was written
    assert (first.status, first.revision, first.active_steps) == ("running", 1, 1)
    assert [(step, to) for step, _, to in harness.history(first.id)] == [
        (None, "initialized"),
        (None, "running"),
        ("a", "queued"),
    ]
    with harness.store.reading() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM wfe_executions")).scalar_one() == 1
    if harness.store.dialect == "postgresql":
        # the second inserted nothing: its key was found by the transaction path, which answers
        assert sent == ["started", "started"]
    harness.work()
    assert harness.view(first.id).status == "completed"
