"""How runs reach workers, decided on plain data."""

from __future__ import annotations

import pytest

from workflow_engine.decisions.delivery import hand_on, may_run_in_place, route
from workflow_engine.definitions.model import StepDefinition

RUNS = ["a", "b", "c", "d", "e"]


def everything(_run: str) -> bool:
    return True


def unknown_capacity() -> int:
    return 0


def test_a_single_next_step_runs_in_place_when_the_worker_may() -> None:
    assert (
        route(["a"], everything, worker_may_run=True, capacity=unknown_capacity, carrying=True).in_place
        == "a"
    )
    assert (
        route(["a"], everything, worker_may_run=False, capacity=unknown_capacity, carrying=True).in_place
        is None
    )
    fixed = route(["a"], lambda _: False, worker_may_run=True, capacity=unknown_capacity, carrying=True)
    assert fixed.in_place is None


@pytest.mark.parametrize(
    ("capacity", "worker_may_run", "in_place", "carried"),
    [
        (2, False, None, ["c", "d", "e"]),  # two by message, the rest carried
        (2, True, "a", ["c", "d", "e"]),  # one of the two run in place instead
        (0, True, None, []),  # capacity unknown: every branch by message
        (5, True, None, []),  # the workers can run them all at once
    ],
)
def test_a_wide_fan_out_sends_what_the_workers_can_run_and_carries_the_rest(
    capacity: int, worker_may_run: bool, in_place: str | None, carried: list[str]
) -> None:
    decided = route(RUNS, everything, worker_may_run=worker_may_run, capacity=lambda: capacity, carrying=True)
    assert (decided.in_place, decided.carried) == (in_place, carried)


def test_only_runs_that_may_move_are_carried_and_nothing_is_when_carrying_is_off() -> None:
    decided = route(RUNS, lambda run: run != "b", worker_may_run=False, capacity=lambda: 1, carrying=True)
    assert decided.carried == ["c", "d", "e"]  # b goes by message: it has a timeout or a queue
    assert route(RUNS, everything, worker_may_run=True, capacity=lambda: 1, carrying=False).carried == []


def test_capacity_is_asked_only_of_a_fan_out() -> None:
    def refuse() -> int:
        raise AssertionError("asked")

    route(["a"], everything, worker_may_run=True, capacity=refuse, carrying=True)
    route(["a", "b"], lambda _: False, worker_may_run=True, capacity=refuse, carrying=True)


def test_a_branch_hands_on_one_carried_sibling_in_place_or_by_message() -> None:
    assert hand_on(carrier=False, worker_may_run=True, busy=False) is None
    assert hand_on(carrier=True, worker_may_run=True, busy=False) == "run"
    assert hand_on(carrier=True, worker_may_run=True, busy=True) == "send"
    assert hand_on(carrier=True, worker_may_run=False, busy=False) == "send"


def test_steps_with_a_timeout_a_queue_or_no_agent_go_by_message() -> None:
    agent = StepDefinition(name="a", agent="echo")
    assert may_run_in_place(agent, "queued")
    assert not may_run_in_place(agent, "retrying")
    for other in (
        StepDefinition(name="a", agent="echo", timeout=5),
        StepDefinition(name="a", agent="echo", queue="gpu"),
        StepDefinition(name="a", type="human"),
    ):
        assert not may_run_in_place(other, "queued")
