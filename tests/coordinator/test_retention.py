"""Purge and retention on SQLite and PostgreSQL: ended executions older than the cutoff go with
their step runs, events, signals and children (an archive line each first); running, waiting,
paused and recent ones stay; a dry run counts; coordinators apply WFE_RETENTION_DAYS."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import timedelta

import pytest
import sqlalchemy as sa

from tests.support.harness import Harness
from workflow_engine.definitions import WorkflowBuilder
from workflow_engine.retention import Purger, Retention
from workflow_engine.store import schema as t

DAY = 86400


def rows(harness: Harness, table: sa.Table, execution_id: str) -> int:
    with harness.store.reading() as db:
        query = sa.select(sa.func.count()).select_from(table)
        column = table.c.id if table is t.executions else table.c.execution_id
        return int(db.execute(query.where(column == execution_id)).scalar_one())


def present(harness: Harness, execution_id: str) -> bool:
    return rows(harness, t.executions, execution_id) == 1


@pytest.fixture
def setup(harness: Harness) -> Iterator[Harness]:
    harness.register(WorkflowBuilder("child").agent("c1"))
    harness.register(WorkflowBuilder("parent").agent("p1").workflow("sub", "child", after="p1"))
    harness.register(WorkflowBuilder("hold").agent("h1").wait("go", after="h1"))
    harness.register(WorkflowBuilder("boom").agent("b1"))
    harness.agent("b1", lambda ctx: (_ for _ in ()).throw(RuntimeError("down")))
    yield harness


def test_old_ended_executions_go_with_everything_that_belongs_to_them(setup: Harness) -> None:
    harness = setup
    parent = harness.run("parent")
    (child,) = harness.store.children(parent.id)
    held = harness.run("hold")  # waiting for its signal: never purged
    harness.coordinator.signal(held.id, "go", {"x": 1}, "t")  # (a signal row is kept with it)
    held_again = harness.run("hold")
    harness.clock.advance(10 * DAY)
    recent = harness.run("parent")
    assert (parent.status, held_again.status, recent.status) == ("completed", "waiting", "completed")
    harness.work()
    out = io.StringIO()
    report = Purger(harness.store).purge(timedelta(days=5), archive=out)
    # the old parent with its child, and the old hold (completed by its signal)
    assert report.executions == 3 and report.rows["step_runs"] >= 4 and report.rows["events"] > 0
    assert report.rows["signals"] == 1
    for gone in (parent.id, child.id, held.id):
        assert not present(harness, gone)
        assert rows(harness, t.step_runs, gone) == rows(harness, t.events, gone) == 0
    assert present(harness, held_again.id) and present(harness, recent.id)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert {line["execution"]["id"] for line in lines} == {parent.id, child.id, held.id}
    archived = {line["execution"]["id"]: line for line in lines}
    assert [s["step_name"] for s in archived[parent.id]["steps"]] == ["p1", "sub"]
    assert archived[child.id]["execution"]["parent_execution_id"] == parent.id
    assert archived[held.id]["signals"][0]["data"] == {"x": 1}
    assert any(e["to_status"] == "completed" for e in archived[parent.id]["events"])


def test_a_dry_run_counts_and_changes_nothing_and_filters_narrow(setup: Harness) -> None:
    harness = setup
    done, failed = harness.run("parent"), harness.run("boom")
    harness.clock.advance(2 * DAY)
    dry = Purger(harness.store).purge(timedelta(days=1), dry_run=True)
    assert dry.dry_run and dry.executions == 3  # parent, its child, boom
    assert present(harness, done.id) and present(harness, failed.id)
    only_failed = Purger(harness.store).purge(timedelta(days=1), statuses=["failed"])
    assert only_failed.executions == 1 and not present(harness, failed.id) and present(harness, done.id)
    other = Purger(harness.store).purge(timedelta(days=1), workflow="boom")
    assert other.executions == 0 and present(harness, done.id)
    with pytest.raises(ValueError, match="only ended executions"):
        Purger(harness.store).purge(timedelta(days=1), statuses=["running"])


def test_an_ended_parent_whose_child_still_runs_is_kept_with_its_family(setup: Harness) -> None:
    harness = setup
    parent = harness.run("parent")
    (child,) = harness.store.children(parent.id)
    with harness.store.transaction() as tx:
        tx.update_execution(child.id, {"status": "running"})  # as if its end were not recorded yet
    harness.clock.advance(2 * DAY)
    report = Purger(harness.store).purge(timedelta(days=1))
    assert report.executions == 0 and report.kept_running == 1
    assert present(harness, parent.id) and present(harness, child.id)


def test_coordinators_apply_the_retention_period_continuously(database_url: str) -> None:
    harness = Harness(database_url, retention_days=1, retention_interval=2 * DAY)
    try:
        harness.register(WorkflowBuilder("boom").agent("b1"))
        first = harness.run("boom")
        assert harness.reconciler.tick().purged == 0  # nothing is a day old
        harness.clock.advance(DAY + 1)
        assert harness.reconciler.tick().purged == 0  # the first is, but no pass is due yet
        second = harness.run("boom")
        harness.clock.advance(DAY)
        assert harness.reconciler.tick().purged == 1  # a pass: the first goes
        assert not present(harness, first.id) and present(harness, second.id)
    finally:
        harness.close()


def test_a_purge_rests_after_each_batch_for_a_share_of_its_time_and_stops_after_its_batches(
    setup: Harness,
) -> None:
    old = [setup.run("boom").id for _ in range(5)]
    setup.clock.advance(2 * DAY)
    rests: list[float] = []
    purger = Purger(setup.store, setup.clock, sleep=rests.append)
    report = purger.purge(timedelta(days=1), batch=2, rest=1.0, batches=2)
    assert (report.executions, report.more) == (4, True)  # two batches of two, then it stops
    assert len(rests) == 2 and all(seconds > 0 for seconds in rests)
    assert report.rows["events"] > 0 and report.rows["step_runs"] == 4
    assert sum(present(setup, x) for x in old) == 1
    rests.clear()
    rest = purger.purge(timedelta(days=1), batch=2, batches=2)
    assert (rest.executions, rest.more, rests) == (1, False, [])  # the last one; no rest asked


def test_a_retention_pass_that_leaves_more_goes_on_at_the_next_tick(setup: Harness) -> None:
    for _ in range(3):
        setup.run("boom")
    setup.clock.advance(2 * DAY)
    retention = Retention(Purger(setup.store, setup.clock), days=1, interval=DAY, batches=1, batch=2)
    passes = [retention.due() for _ in range(3)]
    assert [(p.executions, p.more) if p else None for p in passes] == [(2, True), (1, False), None]
