"""The write paths a decision is applied through, on every store (SQLite, psycopg 3, psycopg2):
each store must apply the same changes the same way."""

from __future__ import annotations

from typing import Any

from tests.support.harness import Harness
from workflow_engine.decisions.outcomes import Success
from workflow_engine.decisions.steps import attempt_values
from workflow_engine.decisions.unit import new_run
from workflow_engine.definitions import WorkflowBuilder
from workflow_engine.store import schema as t
from workflow_engine.store.records import event_row
from workflow_engine.store.seam import UNSUPPORTED, Arrival, Arrived, GuardFailed, Take


def started(harness: Harness, width: int = 1) -> tuple[str, Any]:
    builder = WorkflowBuilder("writes").agent("start")
    for i in range(width):
        builder.agent(f"b{i}", after="start")
    definition = harness.register(builder)
    return harness.start("writes").id, definition


def test_write_adds_runs_in_order_moves_the_row_on_and_records_events(harness: Harness) -> None:
    execution_id, definition = started(harness)
    before = harness.store.get_execution(execution_id)
    now = harness.clock.now()
    rows = [new_run(execution_id, now, definition.step(name), n) for name, n in (("b0", 1), ("start", 2))]
    event = event_row(execution_id, "b0", 1, None, "pending", "test", now, "written")
    values = {"status": "running", "active_steps": 3, "waiting_steps": 0, "resolved_steps": 0}
    values |= {"retries": 0, "updated_at": now, "checkpoint": {"last_completed_step": "x"}}
    with harness.store.transaction() as tx:
        ids = tx.write(execution_id, values, rows, [event])
        live = tx.live_runs(execution_id)
    assert ids == sorted(ids) and len(set(ids)) == 2
    assert [run.id for run in live][-2:] == ids  # oldest first; the new ones last
    after = harness.store.get_execution(execution_id)
    assert (after.active_steps, after.checkpoint, after.revision) == (
        3,
        {"last_completed_step": "x"},
        before.revision + 1,
    )
    assert after.error is None and after.started_at == before.started_at  # unset optional columns are kept
    assert harness.store.events(execution_id)[-1].reason == "written"


def test_run_changes_apply_only_to_runs_in_the_expected_states(harness: Harness) -> None:
    execution_id, _ = started(harness)
    [queued] = harness.runs(execution_id)
    with harness.store.transaction() as tx:
        assert not tx.update_runs_by_id([queued.id], {"status": "cancelled"}, ("running",))
        assert tx.update_runs_by_id([queued.id], {"status": "pending"}, ("queued",))
        assert not tx.update_runs_by_id([queued.id, queued.id + 10_000], {"status": "queued"}, ("pending",))
    assert [run.status for run in harness.runs(execution_id)] == ["queued"]  # the last one touched one of two


def test_superseded_runs_leave_the_live_ones_but_keep_their_attempt_numbers(harness: Harness) -> None:
    execution_id, _ = started(harness)
    harness.work()
    with harness.store.transaction() as tx:
        tx.supersede(execution_id, {"b0"})
        assert {run.step_name for run in tx.live_runs(execution_id)} == {"start"}
        assert tx.latest_attempts(execution_id) == {"start": 1, "b0": 1}
        assert tx.outputs(execution_id, None) == {"start": {"step": "start"}}
        assert tx.outputs(execution_id, ["b0"]) == {}


def test_a_carried_run_is_taken_once_to_run_in_place_or_to_publish(harness: Harness) -> None:
    execution_id, definition = started(harness, width=3)
    now = harness.clock.now()
    rows = [
        new_run(execution_id, now, definition.step(f"b{i}"), 1) | {"status": "queued", "carried": True}
        for i in range(2)
    ]
    values = {
        "status": "running",
        "active_steps": 3,
        "waiting_steps": 0,
        "resolved_steps": 0,
        "retries": 0,
        "updated_at": now,
    }
    with harness.store.transaction() as tx:
        first, second = tx.write(execution_id, values, rows, [])
    with harness.store.transaction() as tx:
        run_id, row = tx.take_carried(execution_id, "w1", "task-1", {"in": 1}) or (None, {})
        assert (run_id, row["worker"]) == (first, "w1")
        sent = tx.take_carried(execution_id, None, None, None)
        assert sent is not None and sent[0] == second
        assert tx.take_carried(execution_id, None, None, None) is None
    taken = {run.id: run for run in harness.runs(execution_id)}
    assert (taken[first].status, taken[first].task_id, taken[first].published_at) == (
        "running",
        "task-1",
        None,
    )
    assert (taken[second].status, taken[second].published_at) == ("queued", now)


def test_an_outcome_is_recorded_only_on_the_run_its_worker_is_running(harness: Harness) -> None:
    execution_id, _ = started(harness)
    [queued] = harness.runs(execution_id)
    claim = harness.coordinator.claim(queued.id, "w1")
    assert claim is not None
    _, values = attempt_values(Success({"n": 1}, 3), harness.clock.now())
    with harness.store.pipelined() as tx:
        record, applied = tx.lock_and_finish_run(execution_id, queued.id, "w2", values)
    assert record is not None and record.id == execution_id and not applied
    with harness.store.pipelined() as tx:
        _, applied = tx.lock_and_finish_run(execution_id, queued.id, "w1", values)
    assert applied
    [run] = harness.runs(execution_id)
    assert (run.status, run.output, run.duration_ms) == ("succeeded", {"n": 1}, 3)


def test_a_row_is_inserted_once_whatever_its_conflicts(harness: Harness) -> None:
    values = {"id": "w:1", "hostname": "h", "pid": 1, "agents": [], "queues": [], "slots": 1}
    values |= {"started_at": harness.clock.now(), "last_seen": harness.clock.now()}
    with harness.store.transaction() as tx:
        assert tx.insert_ignoring_conflicts(t.workers, values, ["id"])
        assert not tx.insert_ignoring_conflicts(t.workers, values | {"pid": 2}, ["id"])


def test_a_counted_success_applies_on_postgresql_only_while_the_guard_holds(harness: Harness) -> None:
    harness.register(
        WorkflowBuilder("joined")
        .agent("start")
        .agent("b0", after="start")
        .agent("b1", after="start")
        .agent("join", after=["b0", "b1"])
    )
    execution_id = harness.start("joined").id
    harness.deliver_one()  # start succeeds: b0 and b1 queued
    runs = {run.step_name: run for run in harness.runs(execution_id)}
    now = harness.clock.now()
    _, values = attempt_values(Success({}, 1), now)

    def counted(step: str) -> Arrival:
        assert harness.coordinator.claim(runs[step].id, "w1") is not None
        event = event_row(execution_id, step, 1, "running", "succeeded", "w1", now)
        checkpoint = {"last_completed_step": step}
        return Arrival(execution_id, runs[step].id, "w1", values, {"join": 2}, checkpoint, event)

    postgresql = harness.store.dialect == "postgresql"
    # b1 is still active and the join waits for it: only counting is left to do
    assert harness.store.record_arrival(counted("b0"), Take()) == (Arrived() if postgresql else UNSUPPORTED)
    if not postgresql:
        return  # SQLite records every outcome under the lock
    after = harness.store.get_execution(execution_id)
    assert (after.active_steps, after.resolved_steps, after.barriers) == (1, 2, {"join": [1, 1]})
    # b1 would make the join due: the guard does not hold, and nothing is written
    assert harness.store.record_arrival(counted("b1"), Take()) == GuardFailed()
    assert harness.store.get_execution(execution_id).revision == after.revision


def test_item_runs_are_read_by_item_pending_ones_lowest_index_first_and_a_steps_own_run_by_step(
    harness: Harness,
) -> None:
    definition = harness.register(WorkflowBuilder("items").map("each", "input.xs", agent="w"))
    execution_id = harness.start("items", input_data={"xs": []}).id  # an empty map: succeeded
    now = harness.clock.now()
    step = definition.step("each")
    rows = []
    for index, status in [(2, "pending"), (0, "succeeded"), (1, "pending"), (0, "failed")]:
        row = new_run(execution_id, now, step, 5 + len(rows))
        row.update(item_index=index, item=f"x{index}", status=status, output={"i": index})
        rows.append(row)
    with harness.store.transaction() as tx:
        tx.insert_runs(rows)
        assert [r.item_index for r in tx.pending_items(execution_id, "each", 5)] == [1, 2]
        assert [r.item_index for r in tx.pending_items(execution_id, "each", 1)] == [1]
        assert [(r.item, r.status) for r in tx.item_runs(execution_id, "each", 0)] == [
            ("x0", "succeeded"),
            ("x0", "failed"),
        ]
        assert tx.item_outputs(execution_id, "each") == {0: {"i": 0}}
        # the step's own run, found by its step: not an item's
        assert tx.update_own_run(execution_id, "each", {"output": {"own": True}}, ("succeeded",))
        assert not tx.update_own_run(execution_id, "each", {"output": None}, ("running",))
        assert tx.outputs(execution_id, ["each"]) == {"each": {"own": True}}  # items are not outputs
    own = [r for r in harness.runs(execution_id, "each") if r.item_index is None]
    assert [r.output for r in own] == [{"own": True}]


def test_a_child_is_inserted_once_and_found_by_its_place(harness: Harness) -> None:
    execution_id, _ = started(harness)
    parent = harness.store.get_execution(execution_id)
    from workflow_engine.decisions.runs import new_execution

    workflow = harness.store.get_workflow("writes")
    with harness.store.transaction() as tx:
        values = new_execution("child-1", workflow, parent.owner_id, "auto", {}, {}, None, tx.now)
        values.update(parent_execution_id=execution_id, parent_step="b0", parent_index=3, depth=1)
        assert tx.insert_child(values)
        assert not tx.insert_child(values)
        child, started_there = tx.latest_child(execution_id, "b0", 3)
        assert child is not None and child.id == "child-1" and started_there == 1
        assert tx.latest_child(execution_id, "b0", None) == (None, 0)
    assert [c.id for c in harness.store.children(execution_id)] == ["child-1"]
