"""Moving an execution to another version of its workflow: accepted when every step it has run
is there with the same type, the move recorded; refused otherwise, changing nothing."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.harness import Harness
from workflow_engine.errors import FatalError, InvalidOperation, WorkflowNotFound


def review(version: str, *extra: dict[str, Any], edges: list[dict[str, str]] | None = None) -> dict[str, Any]:
    """draft → approve (human) → publish, and ``extra`` steps."""
    steps = [
        {"name": "draft", "agent": "writer"},
        {"name": "approve", "type": "human"},
        {"name": "publish", "agent": "publisher"},
        *extra,
    ]
    document: dict[str, Any] = {"name": "review", "version": version, "steps": steps}
    if edges is not None:
        document["edges"] = edges
    return document


CHAIN = [{"from": "draft", "to": "approve"}, {"from": "approve", "to": "publish"}]


def test_a_waiting_execution_moves_and_runs_the_new_versions_steps(harness: Harness) -> None:
    harness.register(review("1.0.0"))
    edges = [*CHAIN, {"from": "draft", "to": "index"}, {"from": "publish", "to": "archive"}]
    harness.register(
        review(
            "1.1.0",
            {"name": "index", "agent": "indexer"},
            {"name": "archive", "agent": "archiver"},
            edges=edges,
        )
    )
    record = harness.start("review", version="1.0.0")
    harness.work()
    assert harness.statuses(record.id)["approve"] == "waiting"
    events = len(harness.store.events(record.id))

    assert harness.coordinator.migrate(record.id, "1.1.0", "ops") == "1.0.0"
    moved = harness.store.get_execution(record.id)
    # index is ready under the new edges (draft has succeeded): it is dispatched at once
    assert (moved.workflow_version, moved.status, moved.total_steps) == ("1.1.0", "running", 5)
    [event] = harness.store.events(record.id)[events : events + 1]
    assert (event.step_name, event.from_status, event.to_status) == (None, "waiting", "waiting")
    assert event.reason == "migrated from version 1.0.0 to 1.1.0"
    assert event.actor == "ops"

    harness.work()
    assert harness.statuses(record.id)["index"] == "succeeded"
    harness.coordinator.complete_step(record.id, "approve", {"ok": True}, "editor")
    harness.work()
    view = harness.view(record.id)
    assert (view.status, view.version) == ("completed", "1.1.0")
    assert {s.name: s.status for s in view.steps}["archive"] == "succeeded"


def test_a_failed_execution_moves_then_its_retry_runs_the_new_version(harness: Harness) -> None:
    harness.register(
        review("1.0.0", edges=[{"from": "draft", "to": "publish"}, {"from": "draft", "to": "approve"}])
    )
    fixed = review("1.0.1", edges=[{"from": "draft", "to": "publish"}, {"from": "draft", "to": "approve"}])
    fixed["steps"][2] = {"name": "publish", "agent": "publisher_v2"}
    harness.register(fixed)
    harness.agent("publisher", lambda ctx: (_ for _ in ()).throw(FatalError("old publisher is broken")))
    harness.agent("publisher_v2", lambda ctx: {"published": 2})
    record = harness.start("review", version="1.0.0")
    harness.work()
    assert harness.store.get_execution(record.id).status == "failed"

    harness.coordinator.migrate(record.id, "1.0.1", "ops")
    assert harness.store.get_execution(record.id).status == "failed"
    harness.coordinator.retry(record.id, "ops")
    harness.work()
    harness.coordinator.complete_step(record.id, "approve", {}, "editor")
    harness.work()
    view = harness.view(record.id)
    assert (view.status, view.version) == ("completed", "1.0.1")
    assert view.output == {"publish": {"published": 2}, "approve": {}}


def test_a_join_waits_for_what_the_new_version_feeds_it(harness: Harness) -> None:
    """draft → (approve, check) → publish; the new version adds audit → publish: publish waits
    for the three."""
    joined = [
        {"from": "draft", "to": "approve"},
        {"from": "draft", "to": "check"},
        {"from": "approve", "to": "publish"},
        {"from": "check", "to": "publish"},
    ]
    harness.register(review("1.0.0", {"name": "check", "agent": "checker"}, edges=joined))
    more = [*joined, {"from": "draft", "to": "audit"}, {"from": "audit", "to": "publish"}]
    harness.register(
        review("2.0.0", {"name": "check", "agent": "checker"}, {"name": "audit", "type": "human"}, edges=more)
    )
    record = harness.start("review", version="1.0.0")
    harness.work()
    assert harness.statuses(record.id)["check"] == "succeeded"
    harness.coordinator.migrate(record.id, "2.0.0", "ops")
    harness.work()
    assert harness.statuses(record.id)["audit"] == "waiting"
    harness.coordinator.complete_step(record.id, "approve", {}, "editor")
    harness.work()
    assert harness.statuses(record.id)["publish"] == "pending"  # audit still to come
    harness.coordinator.complete_step(record.id, "audit", {}, "auditor")
    harness.work()
    assert harness.store.get_execution(record.id).status == "completed"
    assert harness.statuses(record.id)["publish"] == "succeeded"


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        (
            {"name": "review", "version": "2.0.0", "steps": [{"name": "approve", "type": "human"}]},
            "cannot migrate to version 2.0.0: step 'draft' has run and version 2.0.0 has no such step",
        ),
        (
            review("2.0.0") | {"steps": [{"name": "draft", "type": "human"}, *review("2.0.0")["steps"][1:]]},
            "cannot migrate to version 2.0.0: step 'draft' has run as a agent step and is a human step"
            " in version 2.0.0",
        ),
    ],
)
def test_a_move_losing_a_step_that_ran_is_refused_and_changes_nothing(
    harness: Harness, target: dict[str, Any], reason: str
) -> None:
    harness.register(review("1.0.0"))
    harness.register(target)
    record = harness.start("review", version="1.0.0")
    harness.work()
    before = (harness.store.get_execution(record.id), harness.store.events(record.id))
    with pytest.raises(InvalidOperation) as refused:
        harness.coordinator.migrate(record.id, "2.0.0", "ops")
    assert str(refused.value) == reason
    assert (harness.store.get_execution(record.id), harness.store.events(record.id)) == before


def test_an_ended_execution_an_unknown_version_or_the_same_one_is_refused(harness: Harness) -> None:
    harness.register(review("1.0.0"))
    harness.register(review("1.1.0"))
    record = harness.start("review", version="1.0.0")
    harness.work()
    with pytest.raises(WorkflowNotFound):
        harness.coordinator.migrate(record.id, "9.9.9", "ops")
    with pytest.raises(InvalidOperation, match=r"already runs version 1\.0\.0"):
        harness.coordinator.migrate(record.id, "1.0.0", "ops")
    harness.coordinator.cancel(record.id, "ops")
    with pytest.raises(InvalidOperation, match="this one is cancelled"):
        harness.coordinator.migrate(record.id, "1.1.0", "ops")


def test_a_paused_execution_moves_and_holds_what_the_new_version_makes_ready(harness: Harness) -> None:
    harness.register(review("1.0.0"))
    edges = [*CHAIN, {"from": "draft", "to": "index"}]
    harness.register(review("1.1.0", {"name": "index", "agent": "indexer"}, edges=edges))
    record = harness.start("review", version="1.0.0")
    harness.work()
    harness.coordinator.pause(record.id, "ops")
    harness.coordinator.migrate(record.id, "1.1.0", "ops")
    harness.work()
    assert harness.store.get_execution(record.id).status == "paused"
    [held] = harness.runs(record.id, "index")  # opened, and held until resumed
    assert held.status == "pending"
    harness.coordinator.resume(record.id, "ops")
    harness.work()
    assert harness.statuses(record.id)["index"] == "succeeded"
