"""A definition's own test cases (``tests:``): what each case gives the workflow, and what it
expects back.

A case names its input, mocks for agents (an output, or an error of a kind, optionally only for
the first ``times`` attempts), the human tasks a person completes, and the signals sent; it
expects the execution's status, some steps' statuses and its output (a mapping matches when
it holds the expected keys with the expected values). :mod:`workflow_engine.testing` runs them.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from workflow_engine.core.states import ExecutionStatus, StepStatus
from workflow_engine.errors import Problem

ERROR_KINDS = ("transient", "validation", "fatal")
_ERROR_FIELDS = frozenset({"error", "times", "output", "message"})


def error_mock(value: Any) -> dict[str, Any] | None:
    """The error a mock raises (``{error, times?, output?, message?}``), or None when the mock
    is an output."""
    if isinstance(value, Mapping) and "error" in value and set(value) <= _ERROR_FIELDS:
        return dict(value)
    return None


class Expectation(BaseModel):
    """What a case expects; anything left out is not checked."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    status: ExecutionStatus | None = None
    steps: dict[str, StepStatus] = Field(default_factory=dict)
    output: Any = None

    @property
    def checks_output(self) -> bool:
        return "output" in self.model_fields_set


class SignalGiven(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=100)
    data: Any = None


class CaseDefinition(BaseModel):
    """One case: ``{name, input, metadata, mocks, human, signals, expect}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=200)
    input: Any = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    mocks: dict[str, Any] = Field(default_factory=dict)
    human: dict[str, Any] = Field(default_factory=dict)
    signals: tuple[SignalGiven, ...] = ()
    expect: Expectation = Expectation()

    @field_validator("signals", mode="before")
    @classmethod
    def _signals(cls, value: Any) -> Any:
        """``signals`` may also be a mapping of name to data."""
        if isinstance(value, Mapping):
            return [{"name": name, "data": data} for name, data in value.items()]
        return value

    @field_validator("mocks")
    @classmethod
    def _mocks(cls, value: dict[str, Any]) -> dict[str, Any]:
        for agent, mock in value.items():
            error = error_mock(mock)
            if error is None:
                continue
            if error["error"] not in ERROR_KINDS:
                raise ValueError(f"{agent}: error must be one of {', '.join(ERROR_KINDS)}")
            times = error.get("times")
            if times is not None and (isinstance(times, bool) or not isinstance(times, int) or times < 1):
                raise ValueError(f"{agent}: times must be a whole number of attempts, 1 or more")
        return value


def case_problems(
    cases: tuple[CaseDefinition, ...],
    steps: Mapping[str, str],
    agents: Collection[str],
    signals: Collection[str],
    starts_children: bool = False,
) -> list[Problem]:
    """What in ``cases`` names what the workflow does not have: ``steps`` maps each step's name
    to its type; ``agents`` and ``signals`` are those its steps run and take. A workflow that
    ``starts_children`` may mock their agents too."""
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    for index, case in enumerate(cases):
        where = f"tests[{index}]"
        if case.name in seen:
            first = seen[case.name]
            problems.append(Problem(f"{where}.name", f"duplicate case name (first at tests[{first}])"))
        seen.setdefault(case.name, index)
        for agent in case.mocks:
            if agent not in agents and not starts_children:
                problems.append(Problem(f"{where}.mocks.{agent}", "no step of this workflow runs this agent"))
        for step in case.human:
            if steps.get(step) != "human":
                problems.append(Problem(f"{where}.human.{step}", "not a human step of this workflow"))
        for position, signal in enumerate(case.signals):
            if signal.name not in signals:
                message = f"no wait step takes {signal.name!r}"
                problems.append(Problem(f"{where}.signals[{position}]", message))
        for step in case.expect.steps:
            if step not in steps:
                problems.append(Problem(f"{where}.expect.steps.{step}", "not a step of this workflow"))
    return problems
