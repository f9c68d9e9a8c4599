"""Concurrency limits on SQLite and PostgreSQL: per key or per workflow, each strategy, oldest
first when a slot frees, the reconciler freeing a slot left by a crash, and concurrent starts
from several coordinators never taking one slot twice."""

from __future__ import annotations

import random
import threading

import pytest

from tests.support.harness import Harness
from workflow_engine.coordinator.service import Coordinator
from workflow_engine.definitions import WorkflowBuilder
from workflow_engine.errors import InputError
from workflow_engine.store import listing
from workflow_engine.store.listing import ExecutionQuery


def export(
    max_running: int = 2, strategy: str = "queue", key: str | None = "input.customer_id"
) -> WorkflowBuilder:
    """An agent step, then a wait for the signal "done": an execution holds its slot until told."""
    return (
        WorkflowBuilder("export")
        .concurrency(max_running, key=key, strategy=strategy)
        .agent("prepare")
        .wait("done", after="prepare")
    )


def start(harness: Harness, customer: str) -> str:
    harness.clock.advance(0.001)  # oldest first: by creation time
    return harness.start("export", input_data={"customer_id": customer}).id


def status(harness: Harness, execution_id: str) -> str:
    return harness.store.get_execution(execution_id).status


def finish(harness: Harness, execution_id: str) -> None:
    harness.coordinator.signal(execution_id, "done", {}, "test")
    harness.work()


def test_an_execution_over_its_keys_limit_waits_and_starts_oldest_first(harness: Harness) -> None:
    harness.register(export(max_running=2))
    first, second, third, fourth = (start(harness, "c1") for _ in range(4))
    other = start(harness, "c2")
    harness.work()
    assert [status(harness, e) for e in (first, second, third, fourth, other)] == [
        "waiting",
        "waiting",
        "initialized",
        "initialized",
        "waiting",
    ]
    view = harness.view(third)
    assert view.reason == "waiting for a concurrency slot" and harness.view(first).reason is None
    events = [e.reason or "" for e in harness.store.events(third)]
    assert any(
        "waiting for a concurrency slot (2 of 2 running for key input.customer_id)" in r for r in events
    )
    finish(harness, second)
    assert [status(harness, e) for e in (third, fourth)] == ["waiting", "initialized"]  # the oldest first
    finish(harness, first)
    finish(harness, third)
    assert status(harness, fourth) == "waiting"
    assert harness.execution_history(fourth)[:2] == ["initialized", "running"]


def test_without_a_key_the_limit_is_for_the_workflow_as_a_whole(harness: Harness) -> None:
    harness.register(export(max_running=1, key=None))
    first, second = start(harness, "c1"), start(harness, "c2")
    harness.work()
    assert (status(harness, first), status(harness, second)) == ("waiting", "initialized")
    finish(harness, first)
    assert status(harness, second) == "waiting"


def test_cancel_newest_cancels_the_new_one_at_once(harness: Harness) -> None:
    harness.register(export(max_running=1, strategy="cancel_newest"))
    first, second = start(harness, "c1"), start(harness, "c1")
    harness.work()
    assert (status(harness, first), status(harness, second)) == ("waiting", "cancelled")
    reasons = [e.reason or "" for e in harness.store.events(second) if e.to_status == "cancelled"]
    assert reasons == ["concurrency limit: 1 of 1 running for key input.customer_id (strategy cancel_newest)"]
    assert harness.calls == [("prepare", 1)]  # the cancelled one ran nothing


def test_cancel_in_progress_cancels_the_oldest_running_and_starts_the_new_one(harness: Harness) -> None:
    harness.register(export(max_running=2, strategy="cancel_in_progress"))
    first, second = start(harness, "c1"), start(harness, "c1")
    harness.work()
    third = start(harness, "c1")
    harness.work()
    assert [status(harness, e) for e in (first, second, third)] == ["cancelled", "waiting", "waiting"]
    reasons = [e.reason or "" for e in harness.store.events(first) if e.to_status == "cancelled"]
    assert reasons and "cancel_in_progress" in reasons[0]


def test_the_reconciler_frees_a_slot_whose_holder_ended_without_starting_the_next(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    harness.register(export(max_running=1))
    first, second = start(harness, "c1"), start(harness, "c1")
    harness.work()
    release = harness.coordinator.slots.release
    monkeypatch.setattr(harness.coordinator.slots, "release", lambda key, actor="concurrency": 0)
    finish(harness, first)  # what ended it stopped before starting the next
    assert (status(harness, first), status(harness, second)) == ("completed", "initialized")
    monkeypatch.setattr(harness.coordinator.slots, "release", release)
    report = harness.reconciler.tick()
    assert report.slots == 1 and status(harness, second) == "running"
    assert harness.reconciler.tick().slots == 0


def test_a_key_that_cannot_be_evaluated_is_refused_and_nothing_starts(harness: Harness) -> None:
    harness.register(export(key="input.customer_id + 1"))
    with pytest.raises(InputError, match=r"concurrency\.key"):
        start(harness, "c1")
    with harness.store.reading() as conn:
        assert listing.page(conn, ExecutionQuery())[1] == 0


def test_concurrent_starts_from_several_coordinators_never_share_a_slot(harness: Harness) -> None:
    harness.register(export(max_running=2))
    coordinators = [
        Coordinator(harness.store, harness.broker, harness.settings, rng=random.Random(n)) for n in range(4)
    ]
    barrier = threading.Barrier(8)
    started: list[str] = []
    errors: list[BaseException] = []

    def go(coordinator: Coordinator) -> None:
        try:
            barrier.wait()
            started.append(coordinator.start("export", input_data={"customer_id": "c1"}).id)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=go, args=(coordinators[n % 4],)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == [] and len(started) == 8
    statuses = sorted(status(harness, e) for e in started)
    assert statuses == ["initialized"] * 6 + ["running"] * 2
