"""The in-process event bus (workflow_engine/events.py): subscribers hear what commits."""

from __future__ import annotations

from typing import Any

from tests.support.harness import Harness
from workflow_engine.definitions import WorkflowBuilder


def test_in_process_subscribers_see_every_transition_after_commit(harness: Harness) -> None:
    seen: list[dict[str, Any]] = []
    unsubscribe = harness.coordinator.events.subscribe(seen.append)
    harness.register(WorkflowBuilder("hooked").agent("a"))
    view = harness.run("hooked")
    stored = [(e.step_name, e.to_status) for e in harness.store.events(view.id)]
    assert [(e["step_name"], e["to_status"]) for e in seen] == stored
    unsubscribe()
    harness.run("hooked")
    assert len(seen) == len(stored)


def test_a_failing_subscriber_does_not_break_the_execution(harness: Harness) -> None:
    harness.coordinator.events.subscribe(lambda event: 1 / 0)
    harness.register(WorkflowBuilder("robust").agent("a"))
    assert harness.run("robust").status == "completed"
