"""Schedules fired by the scheduler on SQLite and PostgreSQL, with a fixed clock: once per fire
time however many schedulers tick, overlap policies, catch-up after a downtime, pause, resume,
trigger, delete, owners, and starts left pending by a stopped coordinator."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from tests.support.harness import Harness
from workflow_engine.coordinator.scheduler import Scheduler
from workflow_engine.definitions import WorkflowBuilder
from workflow_engine.errors import Conflict, InputError, ScheduleNotFound, WorkflowNotFound
from workflow_engine.schedules import Schedules
from workflow_engine.store import listing
from workflow_engine.store import schedules as rows
from workflow_engine.store.listing import ExecutionQuery
from workflow_engine.store.records import ExecutionRecord, FireRecord


@pytest.fixture
def schedules(harness: Harness) -> Schedules:
    harness.register(WorkflowBuilder("report", input_schema={"type": "object"}).agent("build"))
    return Schedules(Scheduler(harness.coordinator, harness.settings, harness.clock))


def scheduled(harness: Harness, name: str = "report") -> list[ExecutionRecord]:
    with harness.store.reading() as conn:
        found, _ = listing.page(conn, ExecutionQuery(workflow=name, limit=1000))
    return sorted(found, key=lambda e: e.metadata.get("scheduled_at", ""))


def fires(harness: Harness, name: str) -> list[FireRecord]:
    with harness.store.reading() as db:
        record = rows.get(db, name, harness.store.system_user_id())  # (made by the deployment)
        assert record is not None
        return list(reversed(rows.recent_fires(db, record.id, limit=100, started_only=False)))


def tick(harness: Harness, schedules: Schedules, seconds: float = 0) -> None:
    harness.clock.advance(seconds)
    schedules.scheduler.tick()


def test_an_interval_schedule_starts_one_execution_per_fire_time(
    harness: Harness, schedules: Schedules
) -> None:
    created = schedules.create("poll", "report", every=30, input={"n": 1}, actor="alice")
    t0 = harness.clock.now()
    # the first fire time is one interval after the creation, as creating it shows
    assert created.next_fire_times[:2] == [t0 + timedelta(seconds=30), t0 + timedelta(seconds=60)]
    tick(harness, schedules)
    tick(harness, schedules, 29)
    assert scheduled(harness) == []
    tick(harness, schedules, 1)
    harness.work()  # it completes (the default overlap skips while one runs)
    tick(harness, schedules, 10)
    tick(harness, schedules, 20)
    tick(harness, schedules)  # again at the same time: nothing more
    other = Scheduler(harness.coordinator, harness.settings, harness.clock)
    other.tick()  # a second coordinator: nothing more
    started = scheduled(harness)
    assert [e.metadata for e in started] == [
        {"schedule": "poll", "scheduled_at": (t0 + timedelta(seconds=30)).isoformat()},
        {"schedule": "poll", "scheduled_at": (t0 + timedelta(seconds=60)).isoformat()},
    ]
    assert all(e.input == {"n": 1} for e in started)
    view = schedules.get("poll")
    assert view.next_fire_times[:2] == [t0 + timedelta(seconds=90), t0 + timedelta(seconds=120)]
    assert len(view.next_fire_times) == 5
    assert [x["execution_id"] for x in view.last_executions] == [e.id for e in reversed(started)]
    assert [(c["action"], c["actor"]) for c in view.changes] == [("created", "alice")]


def test_a_fire_time_is_recorded_once_by_the_database(harness: Harness, schedules: Schedules) -> None:
    schedules.create("poll", "report", every=30)
    tick(harness, schedules, 30)
    (fire,) = fires(harness, "poll")
    with harness.store.transaction() as tx:
        assert rows.insert_fire(tx, fire.schedule_id, fire.fire_time, "started", tx.now) is None


def test_skip_starts_nothing_while_the_previous_execution_runs(
    harness: Harness, schedules: Schedules
) -> None:
    schedules.create("poll", "report", every=10)
    tick(harness, schedules, 10)
    tick(harness, schedules, 10)  # the first still runs (its step was never delivered)
    assert len(scheduled(harness)) == 1
    harness.work()  # it completes
    tick(harness, schedules, 10)
    assert len(scheduled(harness)) == 2
    assert [f.action for f in fires(harness, "poll")] == ["started", "skipped", "started"]


def test_buffer_one_starts_one_when_the_previous_ends(harness: Harness, schedules: Schedules) -> None:
    schedules.create("poll", "report", every=10, overlap="buffer_one")
    t0 = harness.clock.now()
    tick(harness, schedules, 10)
    tick(harness, schedules, 10)  # buffered
    tick(harness, schedules, 10)  # one is buffered already: skipped
    assert len(scheduled(harness)) == 1
    harness.work()
    tick(harness, schedules, 1)
    started = scheduled(harness)
    assert [e.metadata["scheduled_at"] for e in started] == [
        (t0 + timedelta(seconds=10)).isoformat(),
        (t0 + timedelta(seconds=20)).isoformat(),
    ]


def test_allow_all_starts_every_fire_time(harness: Harness, schedules: Schedules) -> None:
    schedules.create("poll", "report", every=10, overlap="allow_all")
    for _ in range(3):
        tick(harness, schedules, 10)
    assert len(scheduled(harness)) == 3
    assert {e.status for e in scheduled(harness)} == {"running"}


def test_cancel_other_cancels_the_running_one(harness: Harness, schedules: Schedules) -> None:
    schedules.create("poll", "report", every=10, overlap="cancel_other")
    tick(harness, schedules, 10)
    tick(harness, schedules, 10)
    first, second = scheduled(harness)
    assert harness.store.get_execution(first.id).status == "cancelled"
    assert harness.store.get_execution(second.id).status == "running"
    reasons = [e.reason or "" for e in harness.store.events(first.id) if e.to_status == "cancelled"]
    assert any("overlap: cancel_other" in r for r in reasons)


def test_after_a_downtime_missed_fire_times_within_the_window_start_oldest_first(
    harness: Harness, schedules: Schedules
) -> None:
    schedules.create("poll", "report", every=60, overlap="allow_all", catchup_window=150)
    t0 = harness.clock.now()
    tick(harness, schedules, 60)
    tick(harness, schedules, 600 + 30)  # down for ten minutes
    times = [e.metadata["scheduled_at"] for e in scheduled(harness)]
    assert times == [(t0 + timedelta(seconds=s)).isoformat() for s in (60, 540, 600, 660)]
    missed = [c for c in schedules.get("poll").changes if c["action"] == "missed"]
    assert missed and missed[0]["details"]["since"] == (t0 + timedelta(seconds=120)).isoformat()


def test_without_a_catch_up_window_a_downtime_starts_nothing_late(
    harness: Harness, schedules: Schedules
) -> None:
    schedules.create("nightly", "report", cron="0 2 * * *", timezone="Europe/Paris")
    tick(harness, schedules, 3 * 86400)
    assert scheduled(harness) == []
    nxt = schedules.get("nightly").next_fire_times[0]
    assert nxt > harness.clock.now() and nxt.hour == 1  # 02:00 in Paris in winter


def test_a_paused_schedule_fires_nothing_and_resumes_from_now(harness: Harness, schedules: Schedules) -> None:
    schedules.create("poll", "report", every=10, overlap="allow_all", catchup_window=3600)
    assert schedules.pause("poll", actor="bob").paused
    assert schedules.get("poll").next_fire_times == []
    tick(harness, schedules, 100)
    assert scheduled(harness) == []
    view = schedules.resume("poll", actor="bob")
    resumed = harness.clock.now()
    assert not view.paused and view.next_fire_times[0] == resumed
    tick(harness, schedules)
    # the fire times while it was paused are not caught up, whatever the window
    assert [e.metadata["scheduled_at"] for e in scheduled(harness)] == [resumed.isoformat()]
    assert [c["action"] for c in schedules.get("poll").changes][:2] == ["resumed", "paused"]


def test_trigger_fires_now_under_the_overlap_policy(harness: Harness, schedules: Schedules) -> None:
    schedules.create("nightly", "report", cron="0 2 * * *")
    fired = schedules.trigger("nightly", actor="carol")
    assert fired.action == "started" and fired.execution_id is not None
    assert harness.store.get_execution(fired.execution_id).metadata["schedule"] == "nightly"
    harness.clock.advance(1)
    again = schedules.trigger("nightly", actor="carol")
    assert again.action == "skipped" and again.execution_id is None
    assert [c["actor"] for c in schedules.get("nightly").changes if c["action"] == "triggered"] == [
        "carol"
    ] * 2


def test_delete_removes_the_schedule_and_keeps_its_executions(harness: Harness, schedules: Schedules) -> None:
    schedules.create("poll", "report", every=10)
    tick(harness, schedules, 10)
    schedules.delete("poll", actor="dave")
    with pytest.raises(ScheduleNotFound):
        schedules.get("poll")
    tick(harness, schedules, 10)
    assert len(scheduled(harness)) == 1


def test_owners_see_only_their_schedules(harness: Harness, schedules: Schedules) -> None:
    alice = harness.store.create_user("alice", None, "operator").id
    bob = harness.store.create_user("bob", None, "operator").id
    schedules.create("mine", "report", every=10, owner_id=alice)
    tick(harness, schedules, 10)
    assert scheduled(harness)[0].owner_id == alice
    assert [s.name for s in schedules.list(alice)] == ["mine"] and schedules.list(bob) == []
    for verb in (schedules.get, schedules.pause, schedules.resume, schedules.trigger, schedules.delete):
        with pytest.raises(ScheduleNotFound):
            verb("mine", bob)  # type: ignore[operator]
    assert [s.name for s in schedules.list(None)] == ["mine"]  # an admin sees every schedule


@pytest.mark.parametrize(
    ("options", "where"),
    [
        ({"cron": "0 2 * *"}, "cron"),
        ({"cron": "0 2 * * *", "every": 3}, "cron"),
        ({"every": 10, "timezone": "Nowhere/Else"}, "timezone"),
        ({"every": 10, "overlap": "sometimes"}, "overlap"),
        ({"every": 10, "catchup_window": -1}, "catchup_window"),
        ({"every": 10, "name": "no spaces"}, "name"),
    ],
)
def test_a_bad_schedule_is_refused_with_every_problem_and_nothing_changes(
    harness: Harness, schedules: Schedules, options: dict[str, Any], where: str
) -> None:
    options = {"name": "bad", **options}
    with pytest.raises(InputError) as refused:
        schedules.create(options.pop("name"), "report", **options)
    assert where in [p.location for p in refused.value.problems]
    assert schedules.list() == []


def test_an_unknown_workflow_a_taken_name_and_bad_input_are_refused(harness: Harness) -> None:
    harness.register(
        WorkflowBuilder("typed", input_schema={"type": "object", "required": ["n"]}).agent("build")
    )
    schedules = Schedules(Scheduler(harness.coordinator, harness.settings, harness.clock))
    with pytest.raises(WorkflowNotFound):
        schedules.create("x", "nope", every=10)
    with pytest.raises(InputError):
        schedules.create("x", "typed", every=10, input={})
    schedules.create("x", "typed", every=10, input={"n": 1})
    with pytest.raises(Conflict):
        schedules.create("x", "typed", every=20, input={"n": 1})
    assert [s.every for s in schedules.list()] == [10]


def test_a_start_left_pending_by_a_stopped_coordinator_is_made_once(
    harness: Harness, schedules: Schedules, monkeypatch: pytest.MonkeyPatch
) -> None:
    schedules.create("poll", "report", every=30)
    stopped = Scheduler(harness.coordinator, harness.settings, harness.clock)
    monkeypatch.setattr(stopped, "_start_all", lambda *args: [])  # it stops after deciding
    harness.clock.advance(30)
    stopped.tick()
    assert scheduled(harness) == []
    tick(harness, schedules, 1)  # too soon to tell it stopped: left alone
    assert scheduled(harness) == []
    tick(harness, schedules, 10)
    tick(harness, schedules)
    (started,) = scheduled(harness)
    assert (
        started.metadata["scheduled_at"] == harness.store.get_execution(started.id).metadata["scheduled_at"]
    )
    assert schedules.get("poll").last_executions[0]["execution_id"] == started.id


def test_a_fire_time_that_cannot_start_is_recorded_and_not_tried_again(
    harness: Harness, schedules: Schedules
) -> None:
    schedules.create("poll", "report", every=30)
    harness.register(
        WorkflowBuilder("report", version="2.0.0", input_schema={"type": "object", "required": ["n"]}).agent(
            "build"
        )
    )
    tick(harness, schedules, 30)
    tick(harness, schedules, 10)
    assert scheduled(harness) == []
    failures = [c for c in schedules.get("poll").changes if c["action"] == "fire failed"]
    assert len(failures) == 1 and "input" in failures[0]["details"]["error"]


def test_two_coordinators_starting_the_same_pending_fire_start_one_execution(
    harness: Harness, schedules: Schedules, monkeypatch: pytest.MonkeyPatch
) -> None:
    schedules.create("poll", "report", every=30)
    stopped = Scheduler(harness.coordinator, harness.settings, harness.clock)
    monkeypatch.setattr(stopped, "_start_all", lambda *args: [])
    harness.clock.advance(30)
    stopped.tick()
    (pending,) = fires(harness, "poll")
    one = Scheduler(harness.coordinator, harness.settings, harness.clock)
    two = Scheduler(harness.coordinator, harness.settings, harness.clock)
    first, second = one._start_pending(pending), two._start_pending(pending)
    assert first[0].execution_id is not None and first[0].execution_id == second[0].execution_id
    assert len(scheduled(harness)) == 1
