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
from workflow_engine.definitions import WorkflowBuilder


@contextmanager
def outcome_statements(harness: Harness) -> Iterator[list[str]]:
    """The outcome statements sent to PostgreSQL meanwhile: "planned" or "locked"."""
    sent: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "EXECUTE wfe_finish_planned(" in statement:
            sent.append("planned")
        elif "EXECUTE wfe_finish(" in statement:
            sent.append("locked")

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
        # a and e came by message (their outcome locks); b, c, d ran in place after a
        assert sent == ["locked", "planned", "planned", "planned", "locked"]


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
        assert sent == ["locked", "locked", "planned", "planned"]


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
