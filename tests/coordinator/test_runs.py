"""Step runs as a unit writes them, on plain data."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from workflow_engine.core.expressions import Expression
from workflow_engine.decisions.runs import bucket, fire_at
from workflow_engine.decisions.unit import new_run
from workflow_engine.definitions.model import StepDefinition
from workflow_engine.errors import ExpressionError

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("status", "step_type", "current", "counter"),
    [
        ("queued", "agent", False, "active"),
        ("running", "agent", False, "active"),
        ("waiting", "timer", False, "active"),  # a timer is under way, not waiting for anyone
        ("waiting", "human", False, "waiting"),
        ("succeeded", "agent", False, "resolved"),
        ("failed", "agent", False, None),  # a retry may follow
        ("failed", "agent", True, "resolved"),
        ("cancelled", "agent", True, None),
    ],
)
def test_each_run_counts_toward_one_counter_at_most(
    status: str, step_type: str, current: bool, counter: str | None
) -> None:
    assert bucket(status, step_type, current) == counter


def test_a_new_run_sets_every_column_and_is_pending() -> None:
    row = new_run("e1", NOW, StepDefinition(name="a", agent="echo", timeout=5), 2)
    assert (row["status"], row["attempt"], row["timeout"], row["queued_at"]) == ("pending", 2, 5, NOW)
    assert row["published_at"] is None and row["carried"] is False


def test_a_timer_fires_after_its_delay_or_at_its_until() -> None:
    never: Any = lambda _expression: pytest.fail("evaluated")  # noqa: E731
    assert fire_at(StepDefinition(name="t", type="timer", delay=30), NOW, never) == datetime(
        2026, 12, 2, 12, 0, 30, tzinfo=UTC
    )
    until = StepDefinition(name="t", type="timer", until="input.at")

    def gives(value: Any) -> Any:
        return lambda _expression: value

    assert fire_at(until, NOW, gives("2026-12-03T00:00:00")) == datetime(2026, 12, 3, tzinfo=UTC)
    assert fire_at(until, NOW, gives(0)) == datetime(1970, 1, 1, tzinfo=UTC)
    with pytest.raises(ExpressionError, match="not a usable timestamp"):
        fire_at(until, NOW, gives("soon"))
    seen: list[Expression] = []
    fire_at(until, NOW, lambda expression: seen.append(expression) or 0)
    assert [e.source for e in seen] == ["input.at"]
