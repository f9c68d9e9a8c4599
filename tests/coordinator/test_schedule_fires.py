"""What a schedule shows is what it does, on SQLite and PostgreSQL with a fixed clock: the first
fire time of an interval schedule, and every fire time that started nothing (skipped by the
overlap policy, missed in a downtime, fallen while paused, failed to start) listed with why."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.support.harness import Harness
from workflow_engine.coordinator.scheduler import Scheduler
from workflow_engine.definitions import WorkflowBuilder
from workflow_engine.schedules import Schedules
from workflow_engine.store import listing
from workflow_engine.store.listing import ExecutionQuery


@pytest.fixture
def schedules(harness: Harness) -> Schedules:
    harness.register(WorkflowBuilder("report", input_schema={"type": "object"}).agent("build"))
    return Schedules(Scheduler(harness.coordinator, harness.settings, harness.clock))


def started_at(harness: Harness) -> list[str]:
    with harness.store.reading() as conn:
        found, _ = listing.page(conn, ExecutionQuery(workflow="report", limit=1000))
    return sorted(e.metadata["scheduled_at"] for e in found)


def tick(harness: Harness, schedules: Schedules, seconds: float = 0) -> None:
    harness.clock.advance(seconds)
    schedules.scheduler.tick()


def test_an_interval_schedule_fires_first_when_creating_it_says(
    harness: Harness, schedules: Schedules
) -> None:
    first = schedules.create("poll", "report", every=30).next_fire_times[0]
    assert first == harness.clock.now() + timedelta(seconds=30)
    assert schedules.get("poll").next_fire_times[0] == first
    tick(harness, schedules)
    tick(harness, schedules, 29.5)
    assert started_at(harness) == []
    tick(harness, schedules, 0.5)
    assert started_at(harness) == [first.isoformat()]


def test_a_fire_time_shown_while_no_scheduler_runs_is_the_one_that_starts(
    harness: Harness, schedules: Schedules
) -> None:
    schedules.create("poll", "report", every=10, overlap="allow_all")
    harness.clock.advance(35)  # no scheduler ticked: the fire time 30 s in is 5 s late
    shown = schedules.get("poll").next_fire_times
    tick(harness, schedules)
    assert started_at(harness) == [shown[0].isoformat()]
    assert schedules.get("poll").next_fire_times[0] == shown[1]


def test_a_skipped_fire_time_is_listed_with_the_execution_that_still_ran(
    harness: Harness, schedules: Schedules
) -> None:
    schedules.create("poll", "report", every=10)
    t0 = harness.clock.now()
    tick(harness, schedules, 10)
    tick(harness, schedules, 10)  # the first still runs (its step was never delivered)
    (running,) = schedules.get("poll").last_executions
    assert schedules.get("poll").skipped_fires == [
        {
            "scheduled_at": (t0 + timedelta(seconds=20)).isoformat(),
            "until": (t0 + timedelta(seconds=20)).isoformat(),
            "count": 1,
            "action": "skipped",
            "reason": f"overlap skip: the previous execution ({running['execution_id']}) still ran",
        }
    ]


def test_fire_times_missed_in_a_downtime_are_listed_as_one_run(
    harness: Harness, schedules: Schedules
) -> None:
    schedules.create("poll", "report", every=60)
    t0 = harness.clock.now()
    tick(harness, schedules, 60)
    harness.work()
    tick(harness, schedules, 600 + 30)  # down for ten minutes, no catch-up window
    assert started_at(harness) == [(t0 + timedelta(seconds=s)).isoformat() for s in (60, 660)]
    view = schedules.get("poll")
    (missed,) = view.skipped_fires
    assert (missed["scheduled_at"], missed["until"], missed["count"], missed["action"]) == (
        (t0 + timedelta(seconds=120)).isoformat(),
        (t0 + timedelta(seconds=600)).isoformat(),
        9,
        "missed",
    )
    assert "past the catch-up window (0 s)" in missed["reason"]
    assert view.next_fire_times[0] == t0 + timedelta(seconds=720)
    tick(harness, schedules)  # a second look records nothing more
    assert len(schedules.get("poll").skipped_fires) == 1


def test_fire_times_fallen_while_paused_are_listed_when_it_resumes(
    harness: Harness, schedules: Schedules
) -> None:
    schedules.create("poll", "report", every=10)
    t0 = harness.clock.now()
    schedules.pause("poll", actor="bob")
    tick(harness, schedules, 100)
    resumed = schedules.resume("poll", actor="bob")
    (paused,) = resumed.skipped_fires
    assert (paused["scheduled_at"], paused["until"], paused["count"], paused["action"]) == (
        (t0 + timedelta(seconds=10)).isoformat(),
        (t0 + timedelta(seconds=90)).isoformat(),
        9,
        "paused",
    )
    assert "paused" in paused["reason"]
    assert resumed.next_fire_times[0] == t0 + timedelta(seconds=100)


def test_a_fire_time_that_could_not_start_is_listed_with_its_error(
    harness: Harness, schedules: Schedules
) -> None:
    schedules.create("poll", "report", every=30)
    harness.register(
        WorkflowBuilder("report", version="2.0.0", input_schema={"type": "object", "required": ["n"]}).agent(
            "build"
        )
    )
    tick(harness, schedules, 30)
    (failed,) = schedules.get("poll").skipped_fires
    assert failed["action"] == "failed" and failed["count"] == 1 and "input" in failed["reason"]
    assert schedules.get("poll").last_executions == []
