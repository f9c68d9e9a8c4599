"""A map's items, counted: the pure rules of core.mapping."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workflow_engine.core import mapping
from workflow_engine.core.states import ExecutionStatus
from workflow_engine.core.states import StepStatus as S

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("tolerance", "total", "allowed"),
    [(0, 10, 0), (2, 10, 2), ("10%", 10, 1), ("10%", 9, 0), ("50%", 7, 3), ("100%", 4, 4), (" 25 % ", 8, 2)],
)
def test_tolerance_is_a_count_or_a_percentage_rounded_down(
    tolerance: int | str, total: int, allowed: int
) -> None:
    assert mapping.tolerated(tolerance, total) == allowed


def test_a_tolerance_that_is_no_count_nor_percentage_is_refused() -> None:
    with pytest.raises(ValueError, match="not a count or a percentage"):
        mapping.tolerated("some", 10)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ({"a": 1}, "items gave dict, not a list"),
        (None, "items gave null, not a list"),
        ("abc", "items gave str, not a list"),
        (list(range(4)), "items gave 4 elements, more than the 3 allowed (WFE_MAP_MAX_ITEMS)"),
    ],
)
def test_items_must_be_a_list_within_the_limit(value: object, problem: str) -> None:
    assert mapping.items_problem(value, 3) == problem


def test_a_list_within_the_limit_and_an_empty_one_are_items() -> None:
    assert mapping.items_problem([1, 2, 3], 3) is None
    assert mapping.items_problem([], 3) is None


def test_results_are_in_item_order_with_null_for_failed_items() -> None:
    assert mapping.results(4, {3: {"d": 1}, 0: {"a": 1}, 1: {"b": 1}}) == {
        "results": [{"a": 1}, {"b": 1}, None, {"d": 1}],
        "failed": [2],
    }
    assert mapping.results(0, {}) == {"results": [], "failed": []}


def test_admission_fills_the_window_and_no_more_than_what_is_pending() -> None:
    progress = mapping.start(5, 1, 0)
    assert mapping.admissible(progress, 2) == 2
    progress["running"] = 2
    assert mapping.admissible(progress, 2) == 0
    progress.update(running=1, succeeded=3)
    assert mapping.pending(progress) == 1
    assert mapping.admissible(progress, 10) == 1


def test_more_failures_than_tolerated_fail_the_map() -> None:
    progress = mapping.start(10, 1, 0)
    progress["failed"] = 1
    assert not mapping.over_tolerance(progress, "10%")
    progress["failed"] = 2
    assert mapping.over_tolerance(progress, "10%")
    assert mapping.over_tolerance(progress, 1)


STATUSES = [S.PENDING, S.QUEUED, S.RETRYING, S.RUNNING, S.SUCCEEDED, S.FAILED, S.CANCELLED]


@given(st.lists(st.tuples(st.integers(0, 9), st.sampled_from(STATUSES)), max_size=60))
def test_the_admitted_count_is_the_number_of_items_queued_retrying_or_running(
    moves: list[tuple[int, S]],
) -> None:
    """However the items' runs move, counting each move by one keeps the admitted count equal
    to a count over the items' statuses."""
    progress = mapping.start(10, 1, 0)
    statuses: dict[int, S] = {}
    for index, status in moves:
        mapping.moved(progress, statuses.get(index), status)
        statuses[index] = status
    assert progress["running"] == sum(status in mapping.ADMITTED for status in statuses.values())


def test_summary_shows_done_failed_running_pending_and_total() -> None:
    progress = mapping.start(10, 1, 0)
    progress.update(succeeded=4, failed=1, running=2)
    assert mapping.summary(progress) == {
        "total": 10,
        "done": 4,
        "failed": 1,
        "running": 2,
        "pending": 3,
        "cancelled": 0,
    }


@st.composite
def item_rows(draw: st.DrawFn) -> tuple[str, dict[str, int]]:
    total = draw(st.integers(2, 12))
    succeeded = draw(st.integers(0, total - 1))
    failed = draw(st.integers(0, total - 1 - succeeded))
    running = draw(st.integers(1, total - succeeded - failed))
    status = draw(st.sampled_from([ExecutionStatus.RUNNING, ExecutionStatus.PAUSED]))
    progress = {"total": total, "succeeded": succeeded, "failed": failed, "running": running}
    return status, {**progress, "attempt": 1, "opened_ms": 0}


@given(item_rows())
def test_where_the_item_guard_holds_the_decision_only_counts_and_reads_nothing(
    drawn: tuple[str, dict[str, int]],
) -> None:
    """The one-statement path of an item's success (core.mapping.ITEM_ARRIVAL, rendered in
    store/arrivals.py) against the whole decision on plain data."""
    from dataclasses import replace

    from tests.coordinator.test_deciding import NOW, SETTINGS, claim_of, record
    from workflow_engine.decisions import steps
    from workflow_engine.decisions.facts import Facts, Missing
    from workflow_engine.decisions.outcomes import Success
    from workflow_engine.decisions.unit import Unit
    from workflow_engine.definitions import WorkflowBuilder

    status, progress = drawn
    definition = (
        WorkflowBuilder("m")
        .agent("src")
        .map("each", "steps.src.items", agent="w", after="src")
        .agent("end", after="each")
        .build()
    )
    row = record(definition, status=status, maps={"each": dict(progress)}, active_steps=1, resolved_steps=1)
    asked: list[Missing] = []

    def load(missing: Missing) -> object:
        asked.append(missing)
        return {"results": {}, "pending items": (), "runs": (), "outputs": {}, "attempts": {}}.get(
            missing.what, 0
        )

    def make(facts: Facts, rng: object) -> Unit:
        return Unit(facts, definition, SETTINGS, "w1", rng)  # type: ignore[arg-type]

    claim = replace(claim_of(definition, "each"), index=0, item="x")

    def act(unit: Unit) -> str:
        return steps.after_attempt(unit, claim, Success({}, 1), "succeeded")

    unit, _ = steps.decide(Facts(NOW, row, capacity=None), make, act, load, 3)
    only_counts = (
        not asked
        and not unit.new
        and unit.status == row.status
        and unit.maps == {"each": mapping.ITEM_ARRIVAL.counted(progress)}
        and set(unit.changes) == {"maps"}
        and not unit.runs.changes
    )
    if mapping.ITEM_ARRIVAL.holds(status, progress):
        assert only_counts, (drawn, unit.changes, asked)
    elif status == ExecutionStatus.RUNNING:
        assert not only_counts, drawn  # the guard keeps no case from the fast path needlessly
