"""The rule of a success that only counts, against the whole decision, on plain data."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from tests.coordinator.test_deciding import NOW, SETTINGS, claim_of, record
from workflow_engine.core import planner
from workflow_engine.core.arrivals import ARRIVAL
from workflow_engine.core.states import ExecutionMode, ExecutionStatus
from workflow_engine.decisions import steps
from workflow_engine.decisions.facts import Facts, Missing
from workflow_engine.decisions.outcomes import Success
from workflow_engine.decisions.unit import Unit
from workflow_engine.definitions import WorkflowBuilder


def fan(width: int) -> Any:
    builder = WorkflowBuilder(f"fan{width}").agent("start")
    branches = [f"b{i}" for i in range(width)]
    for branch in branches:
        builder.agent(branch, after="start")
    return builder.agent("join", after=branches).agent("end", after="join").build()


@st.composite
def rows(draw: st.DrawFn) -> tuple[Any, dict[str, Any]]:
    width = draw(st.integers(2, 5))
    definition = fan(width)
    remaining = draw(st.integers(1, width))
    barriers = draw(st.sampled_from([None, {"join": [remaining, width - remaining]}]))
    values = {
        "status": draw(
            st.sampled_from([ExecutionStatus.RUNNING, ExecutionStatus.PAUSED, ExecutionStatus.WAITING])
        ),
        "mode": draw(st.sampled_from(list(ExecutionMode))),
        "active_steps": draw(st.integers(1, width)),
        "resolved_steps": draw(st.integers(1, width + 2)),
        "barriers": barriers,
    }
    return definition, values


@given(rows())
def test_where_the_guard_holds_the_decision_only_counts_and_reads_nothing(
    drawn: tuple[Any, dict[str, Any]],
) -> None:
    definition, values = drawn
    joins = planner.arrival_joins(definition.graph, "b0")
    assert joins == {"join": len(definition.graph) - 3}
    row = record(definition, **values)
    asked: list[Missing] = []

    def load(missing: Missing) -> Any:
        asked.append(missing)
        return {"outputs": {}, "runs": (), "attempts": {}, "capacity": 0}[missing.what]

    def make(facts: Facts, rng: Any) -> Unit:
        return Unit(facts, definition, SETTINGS, "w1", rng)

    def act(unit: Unit) -> str:
        return steps.after_attempt(unit, claim_of(definition, "b0"), Success({}, 1), "succeeded")

    unit, _ = steps.decide(Facts(NOW, row, capacity=None), make, act, load, 3)
    holds = ARRIVAL.holds(
        row.status, row.mode, row.active_steps, row.resolved_steps, row.total_steps, row.barriers, joins
    )
    active, resolved, barriers = ARRIVAL.counted(row.active_steps, row.resolved_steps, row.barriers, joins)
    only_counts = (
        not asked
        and not unit.new
        and unit.status == row.status
        and unit.counts == {"active": active, "waiting": row.waiting_steps, "resolved": resolved}
        and unit.changes == {"barriers": barriers, "checkpoint": {"last_completed_step": "b0"}}
        and [(e["step_name"], e["to_status"]) for e in unit.events] == [("b0", "succeeded")]
    )
    if holds:
        assert only_counts, (values, unit.changes, unit.counts, asked)
    elif row.status == ExecutionStatus.RUNNING and row.mode == ExecutionMode.AUTO:
        assert not only_counts, values  # the guard keeps no case from the fast path needlessly
