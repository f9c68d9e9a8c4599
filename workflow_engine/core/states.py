"""Execution and step-run states, and every allowed transition between them, as data.

One function, :func:`check_transition`, decides whether a transition is allowed. The coordinator
checks every execution transition with it; the store applies step transitions as guarded updates
(``WHERE status IN expected``) and refuses, through :func:`check_step_update`, any update whose
expected states cannot all move to the requested one, so a transition that the tables below do
not list can never be written.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from enum import StrEnum
from typing import Any

from workflow_engine.errors import InvalidTransition


class ExecutionMode(StrEnum):
    """How an execution moves on: by itself, or one step at a time on an operator's word."""

    AUTO = "auto"
    STEP = "step"


def sql_literal(value: StrEnum) -> str:
    """``value`` as an SQL string literal, for statements written once (the values are plain
    lower-case words: nothing to escape)."""
    assert value.value.isidentifier(), value
    return f"'{value.value}'"


class ExecutionStatus(StrEnum):
    INITIALIZED = "initialized"
    RUNNING = "running"
    WAITING = "waiting"
    PAUSED = "paused"
    RESUMED = "resumed"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class StepStatus(StrEnum):
    PENDING = "pending"  # ready, held back (paused execution or step mode)
    QUEUED = "queued"  # written to the outbox and published
    RUNNING = "running"  # claimed by a worker
    RETRYING = "retrying"  # a new attempt waiting out its backoff
    WAITING = "waiting"  # a human task, a timer, or a validation error awaiting a fix
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"


E = ExecutionStatus
S = StepStatus

EXECUTION_TRANSITIONS: Mapping[ExecutionStatus, frozenset[ExecutionStatus]] = {
    E.INITIALIZED: frozenset({E.RUNNING, E.FAILED, E.CANCELLED}),
    E.RUNNING: frozenset({E.WAITING, E.PAUSED, E.COMPLETED, E.FAILED, E.CANCELLED}),
    # waiting → running: human task completed, fix applied, retry, next step (step mode)
    E.WAITING: frozenset({E.RUNNING, E.PAUSED, E.FAILED, E.CANCELLED}),
    # steps that were running when the pause came finish and may end the execution
    E.PAUSED: frozenset({E.RESUMED, E.COMPLETED, E.FAILED, E.CANCELLED}),
    E.RESUMED: frozenset({E.RUNNING, E.CANCELLED}),
    E.COMPLETED: frozenset(),
    E.FAILED: frozenset({E.RUNNING}),  # retry
    E.CANCELLED: frozenset(),
}

STEP_TRANSITIONS: Mapping[StepStatus, frozenset[StepStatus]] = {
    # released: queued at once, or back to its backoff when a pause held a retry; a map or
    # workflow step (or a workflow item) runs at once, on no worker
    S.PENDING: frozenset({S.QUEUED, S.RETRYING, S.RUNNING, S.CANCELLED}),
    S.QUEUED: frozenset({S.RUNNING, S.PENDING, S.CANCELLED}),
    S.RETRYING: frozenset({S.RUNNING, S.PENDING, S.CANCELLED}),
    S.RUNNING: frozenset({S.SUCCEEDED, S.FAILED, S.WAITING, S.CANCELLED}),
    S.WAITING: frozenset({S.SUCCEEDED, S.FAILED, S.CANCELLED}),
    S.SUCCEEDED: frozenset(),
    S.FAILED: frozenset(),
    S.SKIPPED: frozenset(),
    S.CANCELLED: frozenset(),
}

# Named sets, so no module spells out a status list of its own.
TERMINAL_EXECUTION = frozenset({E.COMPLETED, E.FAILED, E.CANCELLED})
SETTLED_EXECUTION = TERMINAL_EXECUTION | {E.WAITING}  # what `wait` and `wfe run` return on
RETRYABLE_EXECUTION = frozenset({E.FAILED, E.WAITING})
CONTROLLABLE_EXECUTION = frozenset({E.RUNNING, E.WAITING, E.RESUMED})  # dispatch allowed

OPEN_STEP = frozenset({S.PENDING, S.QUEUED, S.RETRYING, S.RUNNING, S.WAITING})
DISPATCHED_STEP = frozenset({S.QUEUED, S.RETRYING})  # a message is (or will be) on the broker
CLAIMABLE_STEP = DISPATCHED_STEP
RESOLVED_STEP = frozenset({S.SUCCEEDED, S.FAILED, S.SKIPPED})
FINISHED_STEP = RESOLVED_STEP | {S.CANCELLED}

_MACHINES: Mapping[str, Mapping[Any, frozenset[Any]]] = {
    "execution": EXECUTION_TRANSITIONS,
    "step": STEP_TRANSITIONS,
}


def check_transition(current: str, requested: str, subject: str = "execution") -> None:
    """Raise :class:`InvalidTransition` unless ``current → requested`` is allowed."""
    allowed = _MACHINES[subject].get(current)
    if allowed is None or requested not in allowed:
        raise InvalidTransition(str(current), str(requested), subject)


def sources_of(requested: str, subject: str = "execution") -> frozenset[str]:
    """Every state from which ``requested`` may be entered."""
    machine = _MACHINES[subject]
    return frozenset(str(src) for src, targets in machine.items() if requested in targets)


def check_step_update(expected: Collection[str], requested: str) -> None:
    """Refuse a guarded step-run update unless every ``expected`` state may enter ``requested``."""
    for current in expected:
        check_transition(current, requested, "step")
