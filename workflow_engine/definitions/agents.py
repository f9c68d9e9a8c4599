"""Which agents a definition names that no one is known to serve: the rule `wfe validate`,
`wfe register` and ``POST /workflows`` apply before a version is stored (a (name, version) is
immutable once registered, so a version that names a mistyped agent would be burned).

An agent is named by an agent step and by a map step that runs an agent per item (a child
workflow's agents are checked when the child is registered). What is known is given by the
caller: the agents the live workers report, and those of local modules. Nothing known (no live
worker, no module) means the check cannot be made, which is not the same as every agent being
unknown.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from workflow_engine.definitions.model import TASK_PREFIX, WorkflowDefinition
from workflow_engine.errors import DefinitionError, Problem


def agent_steps(definition: WorkflowDefinition) -> dict[str, list[str]]:
    """Every agent the definition names (a task step's Celery task as ``task:`` and its name),
    with the locations of the steps that name it, in order."""
    named: dict[str, list[str]] = {}
    for index, step in enumerate(definition.steps):
        if step.served_as:
            named.setdefault(step.served_as, []).append(f"steps[{index}] {step.name!r}")
    return named


def unknown(where: str, name: str, known: Collection[str]) -> Problem:
    """The problem of the step at ``where`` whose agent (or Celery task) ``name`` is not known."""
    listed = ", ".join(sorted(known)) or "none"
    if name.startswith(TASK_PREFIX):
        task = name.removeprefix(TASK_PREFIX)
        return Problem(f"{where}.task", f"unknown Celery task {task!r}: no worker loads it (known: {listed})")
    return Problem(f"{where}.agent", f"unknown agent {name!r} (known: {listed})")


def _index(location: str) -> int:
    """The step index of a location ``steps[N] 'name'``."""
    return int(location.removeprefix("steps[").split("]", 1)[0])


@dataclass(frozen=True)
class AgentCheck:
    """What checking a definition's agents against ``known`` found: the agents it names that
    are not known, with their steps' locations. ``known`` is None when nothing was known, so
    nothing could be checked."""

    known: frozenset[str] | None
    unknown: dict[str, list[str]] = field(default_factory=dict)

    @property
    def checked(self) -> bool:
        return self.known is not None

    def problems(self) -> list[Problem]:
        """One problem per step that names an unknown agent, with the known names."""
        named = sorted(
            (_index(where), where, agent) for agent, places in self.unknown.items() for where in places
        )
        return [unknown(where, agent, self.known or ()) for _, where, agent in named]

    def line(self) -> str:
        """The unknown agents and the known ones, on one line."""
        names = ", ".join(f"{agent!r} ({', '.join(where)})" for agent, where in self.unknown.items())
        listed = ", ".join(sorted(self.known or ())) or "none"
        noun = "agent" if len(self.unknown) == 1 else "agents"
        return f"unknown {noun} {names}; known agents: {listed}"


def check_agents(definition: WorkflowDefinition, known: Collection[str] | None) -> AgentCheck:
    """The agents ``definition`` names that are not in ``known`` (None or empty: nothing is
    known, and nothing is reported unknown)."""
    if not known:
        return AgentCheck(None)
    names = frozenset(known)
    unknown = {agent: where for agent, where in agent_steps(definition).items() if agent not in names}
    return AgentCheck(names, unknown)


class UnknownAgents(DefinitionError):
    """A definition names agents that no one is known to serve (a :class:`DefinitionError`,
    with one problem per step that names one); ``check`` is what the check found."""

    def __init__(self, check: AgentCheck, source: str | None = None) -> None:
        self.check = check
        super().__init__(check.problems(), source)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.check, self.source))
