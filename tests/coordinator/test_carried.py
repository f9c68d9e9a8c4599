"""Wide fan-outs: a message per worker process, the other branches carried by the workers that
record their siblings; successes that only count toward a join still waiting for others.

On PostgreSQL a branch's success is one statement that moves the execution's counters on from
its row as it is and takes the next carried sibling; on SQLite the same is decided under the
lock. Either way every branch runs once, every transition is in the history, and the join is
decided once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import sqlalchemy as sa

from tests.support.harness import Harness, fails_first, fan
from workflow_engine.agents import AgentContext
from workflow_engine.definitions import WorkflowBuilder
from workflow_engine.errors import TransientError

WIDTH = 6


@contextmanager
def outcome_statements() -> Iterator[list[str]]:
    """The outcome statements sent to PostgreSQL meanwhile: "counted", "planned" or "locked"."""
    sent: list[str] = []
    kinds = (
        ("wfe_record_arrival(", "counted"),
        ("wfe_finish_optimistic(", "planned"),
        ("wfe_finish(", "locked"),
    )

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        for name, kind in kinds:
            if f"EXECUTE {name}" in statement:
                sent.append(kind)
                return

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", record)


def workers(harness: Harness, count: int) -> None:
    """``count`` live worker processes on the steps queue, as their heartbeats tell."""
    for index in range(count):
        harness.store.beat(f"host:{index}", "host", index, ["work"], [harness.settings.steps_queue], [])


def published_steps(harness: Harness) -> list[str]:
    return [d.step for d in harness.broker.published]


def carried(harness: Harness, execution_id: str) -> list[str]:
    r = sa.table("wfe_step_runs", sa.column("execution_id"), sa.column("step_name"), sa.column("carried"))
    with harness.store.reading() as conn:
        query = sa.select(r.c.step_name).where(r.c.execution_id == execution_id, r.c.carried)
        return list(conn.execute(query).scalars())


def assert_each_branch_ran_once(harness: Harness, execution_id: str, plain: bool = True) -> None:
    """Completed, every step run once, counters and barriers right; with ``plain``, each step's
    history is queued, running, succeeded."""
    view = harness.view(execution_id)
    assert view.status == "completed"
    names = ["start", *(f"b{i}" for i in range(WIDTH)), "join"]
    assert sorted(harness.calls) == sorted((name, 1) for name in names)
    assert {r.step_name: r.status for r in harness.runs(execution_id)} == dict.fromkeys(names, "succeeded")
    for name in names[1:] if plain else ():
        assert [(f, to) for step, f, to in harness.history(execution_id) if step == name] == [
            (None, "queued"),
            ("queued", "running"),
            ("running", "succeeded"),
        ]
    record = harness.store.get_execution(execution_id)
    assert (record.resolved_steps, record.active_steps, record.waiting_steps) == (WIDTH + 2, 0, 0)
    assert record.barriers == {}
    assert view.output == {"join": {"step": "join"}}
    assert carried(harness, execution_id) == []


def test_a_wide_fan_out_sends_a_message_per_worker_and_carries_the_other_branches(harness: Harness) -> None:
    workers(harness, 2)
    harness.inline_steps = 50
    harness.register(fan("wide", WIDTH))
    record = harness.start("wide")
    with outcome_statements() as sent:
        harness.work()
    assert published_steps(harness) == ["start", "b1"]
    assert_each_branch_ran_once(harness, record.id)
    # the carried branches ran one after another on the worker that took b0 in place
    carrier = {r.step_name: r.task_id for r in harness.runs(record.id)}
    assert {carrier[f"b{i}"] for i in (0, 2, 3, 4, 5)} == {carrier["start"]}
    if harness.store.dialect == "postgresql":
        # start (by message) is locked; b0, b2, b3, b4 are counted, each taking the next
        # carried sibling, and b5 with none left; b1 brings the join due: refused, then decided
        # locked; the join, run in place after it, is planned
        assert sent == ["locked", *["counted"] * 6, "locked", "planned"]


@pytest.mark.parametrize("capacity", [0, WIDTH], ids=["no worker known", "as many slots as branches"])
def test_a_fan_out_no_wider_than_the_workers_carries_nothing(harness: Harness, capacity: int) -> None:
    workers(harness, capacity)
    harness.inline_steps = 50
    harness.register(fan("narrow", WIDTH))
    view = harness.run("narrow")
    assert view.status == "completed"
    assert published_steps(harness) == ["start", *(f"b{i}" for i in range(WIDTH))]


def test_a_worker_whose_budget_is_spent_publishes_the_next_carried_branch(harness: Harness) -> None:
    workers(harness, 2)
    harness.inline_steps = 2  # each message: its step and two more in place
    harness.register(fan("relay", WIDTH))
    record = harness.start("relay")
    harness.work()
    assert_each_branch_ran_once(harness, record.id)
    # start, b0 in place, b2 in place; b2's worker has no budget left: b3 is published; b1's
    # message carries b4 and b5 in place; b3's message comes last and brings the join due
    assert published_steps(harness) == ["start", "b1", "b3"]


def test_carried_branches_left_waiting_are_published_by_the_reconciler(harness: Harness) -> None:
    """Carried runs count as handed over: one that waits longer than redispatch_after (its
    carriers died, say) is published by the reconciler like any message gone missing."""
    workers(harness, 2)
    harness.inline_steps = 0  # no step in place: the fan-out's worker carries none itself
    harness.register(fan("orphans", WIDTH))
    record = harness.start("orphans")
    harness.deliver_one()
    assert published_steps(harness) == ["start", "b0", "b1"]
    assert carried(harness, record.id) == ["b2", "b3", "b4", "b5"]
    harness.broker.queue.clear()  # b0's and b1's messages are lost: nobody records a branch
    harness.clock.advance(harness.settings.redispatch_after + 1)
    report = harness.reconciler.tick()
    # b0's and b1's messages again, and one carried run: the worker taking it carries the rest
    assert report.republished == 3
    assert carried(harness, record.id) == ["b3", "b4", "b5"]
    harness.work()
    assert_each_branch_ran_once(harness, record.id, plain=False)


def meanwhile(harness: Harness, name: str, verb: Callable[[str], Any]) -> str:
    """Start a wide fan-out whose first branch applies ``verb`` to its execution as it runs;
    run what can run. The execution's id."""
    workers(harness, 2)
    harness.inline_steps = 50

    def first_branch(ctx: AgentContext) -> dict[str, Any]:
        verb(ctx.execution_id)
        return {"step": ctx.step_name}

    harness.agent("b0", first_branch)
    harness.register(fan(name, WIDTH))
    record = harness.start(name)
    harness.work()
    return record.id


def test_a_pause_holds_the_carried_branches_and_resume_publishes_them(harness: Harness) -> None:
    execution_id = meanwhile(harness, "paused", lambda e: harness.coordinator.pause(e, "operator"))
    assert harness.view(execution_id).status == "paused"
    statuses = harness.statuses(execution_id)
    assert statuses["b0"] == "succeeded"
    held = [f"b{i}" for i in range(1, WIDTH)]
    assert {statuses[name] for name in held} == {"pending"}
    assert carried(harness, execution_id) == []
    harness.coordinator.resume(execution_id, "operator")
    harness.work()
    assert_each_branch_ran_once(harness, execution_id, plain=False)


def test_a_cancel_ends_the_carried_branches(harness: Harness) -> None:
    execution_id = meanwhile(harness, "cancelled", lambda e: harness.coordinator.cancel(e, "operator"))
    assert harness.view(execution_id).status == "cancelled"
    statuses = harness.statuses(execution_id)
    assert [name for name, _ in harness.calls] == ["start", "b0"]
    assert {statuses[f"b{i}"] for i in range(WIDTH)} == {"cancelled"}
    assert statuses["join"] == "pending"
    assert carried(harness, execution_id) == []


def test_a_branch_that_fails_and_retries_still_hands_on_a_carried_sibling(harness: Harness) -> None:
    workers(harness, 2)
    harness.inline_steps = 50
    harness.agent("b0", fails_first(TransientError("flaky"), {"step": "b0"}))
    harness.register(fan("flaky", WIDTH))
    record = harness.start("flaky")
    harness.deliver_one()  # start: b0 in place (fails, retries later), b1 by message
    assert sorted(step for step, _ in harness.calls) == ["b0", "b2", "b3", "b4", "b5", "start"]
    harness.work()
    view = harness.view(record.id)
    assert view.status == "completed"
    assert [(r.attempt, r.status) for r in harness.runs(record.id, "b0")] == [(1, "failed"), (2, "succeeded")]
    assert carried(harness, record.id) == []


@pytest.mark.parametrize("width", [2, 3])
def test_joins_are_decided_once_whatever_the_order(harness: Harness, width: int) -> None:
    """Two joins fed by the same branches, of which some finish by message and some carried."""
    workers(harness, 1)
    harness.inline_steps = 50
    builder = WorkflowBuilder("two-joins").agent("start")
    branches = [f"b{i}" for i in range(width)]
    for branch in branches:
        builder.agent(branch, after="start")
    builder.agent("j1", after=branches).agent("j2", after=branches).agent("end", after=["j1", "j2"])
    harness.register(builder)
    view = harness.run("two-joins")
    assert view.status == "completed"
    assert sorted(name for name, _ in harness.calls) == sorted(["start", *branches, "j1", "j2", "end"])
    assert all(count == 1 for _, count in harness.calls)
    assert harness.store.get_execution(view.id).barriers == {}


def test_a_fan_out_without_a_join_completes_with_every_branch_output(harness: Harness) -> None:
    workers(harness, 1)
    harness.inline_steps = 50
    builder = WorkflowBuilder("no-join").agent("start")
    for index in range(4):
        builder.agent(f"b{index}", after="start")
    harness.register(builder)
    with outcome_statements() as sent:
        view = harness.run("no-join")
    assert view.status == "completed"
    assert view.output == {f"b{i}": {"step": f"b{i}"} for i in range(4)}
    assert harness.store.get_execution(view.id).resolved_steps == 5
    if harness.store.dialect == "postgresql":
        # three branches count toward completion; the last completes the execution, locked
        assert sent == ["locked", "counted", "counted", "counted", "counted", "locked"]


def test_branches_that_are_chains_hand_on_their_carried_siblings(harness: Harness) -> None:
    """A branch's first step goes on with the branch's next step in place: it publishes a
    carried sibling instead of taking it, and whoever takes that message carries on."""
    workers(harness, 2)
    harness.inline_steps = 50
    builder = WorkflowBuilder("chains").agent("start")
    for index in range(WIDTH):
        builder.agent(f"b{index}", after="start").agent(f"c{index}", after=f"b{index}")
    harness.register(builder.agent("join", after=[f"c{i}" for i in range(WIDTH)]))
    view = harness.run("chains")  # no reconciler: the fan-out finishes on its messages alone
    assert view.status == "completed"
    assert sorted(harness.calls) == sorted(
        [("start", 1), ("join", 1), *((f"{s}{i}", 1) for s in "bc" for i in range(WIDTH))]
    )
    assert carried(harness, view.id) == []
    # b0 ran in place after start, b1 by message; each branch's first step sent one more
    assert published_steps(harness) == ["start", "b1", "b2", "b3", "b4", "b5"]


def test_the_reconciler_leaves_carried_runs_to_live_carriers_and_restarts_them_when_gone(
    harness: Harness,
) -> None:
    workers(harness, 2)
    harness.inline_steps = 0
    harness.register(fan("tail", WIDTH))
    record = harness.start("tail")
    harness.deliver_one()  # start: b0 and b1 by message, b2-b5 carried
    b0 = harness.broker.queue.pop(0)
    assert harness.coordinator.claim(b0.run_id, "slow-worker") is not None  # b0 runs, for long
    harness.clock.advance(harness.settings.redispatch_after + 1)
    with harness.store.transaction() as tx:  # b0's worker is alive, and the execution moves on
        now = {"now": harness.clock.now(), "run": b0.run_id, "execution": record.id}
        tx.execute(sa.text("UPDATE wfe_step_runs SET heartbeat_at = :now WHERE id = :run"), now)
        tx.execute(sa.text("UPDATE wfe_executions SET updated_at = :now WHERE id = :execution"), now)
    assert harness.reconciler.tick().republished == 1  # b1's message is overdue, not the carried
    assert carried(harness, record.id) == ["b2", "b3", "b4", "b5"]
    harness.clock.advance(harness.settings.worker_lost_after + 1)  # b0's worker is gone
    report = harness.reconciler.tick()
    # one carried run published (b2) for the carriers gone; b0 runs again, handing on b3
    assert (report.lost, report.republished) == (1, 1)
    assert carried(harness, record.id) == ["b4", "b5"]
    harness.work()
    assert harness.view(record.id).status == "completed"
    assert carried(harness, record.id) == []


def test_a_branch_given_up_by_the_reconciler_hands_on_a_carried_sibling(harness: Harness) -> None:
    """An optional branch whose worker is lost for good still hands a carried sibling on, even
    while an unrelated step of the execution keeps running."""
    harness.settings = harness.settings.with_overrides(max_worker_losses=1)
    harness.coordinator.settings = harness.reconciler.settings = harness.settings
    workers(harness, 1)
    harness.inline_steps = 0
    builder = WorkflowBuilder("given-up").agent("side").agent("start")
    for index in range(3):
        builder.agent(f"b{index}", after="start", required=False)
    harness.register(builder.agent("end", after=["side", "b0", "b1", "b2"]))
    record = harness.start("given-up")
    side = next(d for d in harness.broker.queue if d.step == "side")
    harness.broker.queue.remove(side)
    harness.deliver_one()  # start: b0 by message, b1 and b2 carried
    [b0] = harness.broker.queue
    harness.broker.queue.clear()
    assert harness.coordinator.claim(b0.run_id, "lost-worker") is not None
    assert harness.coordinator.claim(side.run_id, "side-worker") is not None
    harness.clock.advance(harness.settings.worker_lost_after + 1)
    with harness.store.transaction() as tx:  # side's worker is alive; b0's is not
        now = {"now": harness.clock.now(), "run": side.run_id}
        tx.execute(sa.text("UPDATE wfe_step_runs SET heartbeat_at = :now WHERE id = :run"), now)
    report = harness.reconciler.tick()
    assert report.lost == 1 and harness.statuses(record.id)["b0"] == "failed"
    assert carried(harness, record.id) == ["b2"]  # b1 was handed on, by message
    assert [d.step for d in harness.broker.queue] == ["b1"]
