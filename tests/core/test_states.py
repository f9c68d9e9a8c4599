from __future__ import annotations

import itertools

import pytest

from workflow_engine.core.states import (
    EXECUTION_TRANSITIONS,
    STEP_TRANSITIONS,
    TERMINAL_EXECUTION,
    ExecutionStatus,
    StepStatus,
    check_transition,
    sources_of,
)
from workflow_engine.errors import InvalidTransition

EXECUTION_ALLOWED = [(a, b) for a, targets in EXECUTION_TRANSITIONS.items() for b in targets]
EXECUTION_REFUSED = [
    (a, b)
    for a, b in itertools.product(ExecutionStatus, ExecutionStatus)
    if b not in EXECUTION_TRANSITIONS[a]
]
STEP_ALLOWED = [(a, b) for a, targets in STEP_TRANSITIONS.items() for b in targets]
STEP_REFUSED = [(a, b) for a, b in itertools.product(StepStatus, StepStatus) if b not in STEP_TRANSITIONS[a]]


@pytest.mark.parametrize(("current", "requested"), EXECUTION_ALLOWED)
def test_every_allowed_execution_transition_is_accepted(current: str, requested: str) -> None:
    check_transition(current, requested)


@pytest.mark.parametrize(("current", "requested"), EXECUTION_REFUSED)
def test_every_other_execution_transition_is_refused_with_both_states_named(
    current: str, requested: str
) -> None:
    with pytest.raises(InvalidTransition) as caught:
        check_transition(current, requested)
    assert caught.value.current == current
    assert caught.value.requested == requested
    assert f"from {current} to {requested}" in str(caught.value)


@pytest.mark.parametrize(("current", "requested"), STEP_ALLOWED)
def test_every_allowed_step_transition_is_accepted(current: str, requested: str) -> None:
    check_transition(current, requested, "step")


@pytest.mark.parametrize(("current", "requested"), STEP_REFUSED)
def test_every_other_step_transition_is_refused(current: str, requested: str) -> None:
    with pytest.raises(InvalidTransition, match="step cannot go"):
        check_transition(current, requested, "step")


def test_contract_lifecycle_is_a_path_through_the_machine() -> None:
    path = ["initialized", "running", "waiting", "running", "paused", "resumed", "running", "completed"]
    for current, requested in itertools.pairwise(path):
        check_transition(current, requested)


def test_terminal_states_lead_nowhere_except_failed_which_can_be_retried() -> None:
    for status in TERMINAL_EXECUTION:
        expected = {ExecutionStatus.RUNNING} if status == ExecutionStatus.FAILED else set()
        assert set(EXECUTION_TRANSITIONS[status]) == expected


def test_sources_of_lists_every_state_that_may_enter_the_requested_one() -> None:
    assert sources_of("resumed") == {"paused"}
    assert sources_of("running", "step") == {"pending", "queued", "retrying"}  # pending: a map starts
    assert "completed" not in sources_of("running")


def test_unknown_state_is_refused() -> None:
    with pytest.raises(InvalidTransition):
        check_transition("exploded", "running")


def test_invalid_transition_pickles_with_its_attributes() -> None:
    import pickle

    error = pickle.loads(pickle.dumps(InvalidTransition("completed", "running")))
    assert (error.current, error.requested) == ("completed", "running")
