"""Running a definition's own cases (``tests:``) in a harness, and what each one found."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from workflow_engine.agents import REGISTRY, AgentContext, AgentRegistry
from workflow_engine.definitions.cases import CaseDefinition
from workflow_engine.definitions.model import WorkflowDefinition
from workflow_engine.errors import FatalError, WorkflowEngineError
from workflow_engine.testing.harness import Harness

MAX_ROUNDS = 100  # human tasks and signals given in turn, each followed by the work it lets run


@dataclass(frozen=True)
class CaseResult:
    workflow: str
    version: str
    case: str
    passed: bool
    status: str | None  # the execution's (None: it could not start)
    differences: list[str] = field(default_factory=list)
    path: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def line(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        text = f"{verdict} {self.workflow} {self.version} {self.case}"
        return f"{text}: {'; '.join(self.differences)}" if self.differences else text

    def document(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Limits:
    """What one run of cases may take: ``seconds`` of wall time in all, and lists (a map's
    items, the executions one case starts) of at most ``items``."""

    seconds: float
    items: int

    def stop_reason(self) -> str:
        return f"stopped: the test run took longer than {self.seconds:g} s (WFE_TEST_RUN_TIMEOUT)"


def contains(actual: Any, expected: Any) -> bool:
    """``expected`` in ``actual``: a mapping matches when each of its keys holds a matching
    value; anything else is compared for equality."""
    if isinstance(expected, Mapping):
        return isinstance(actual, Mapping) and all(
            key in actual and contains(actual[key], value) for key, value in expected.items()
        )
    return bool(actual == expected)


def run_cases(
    definitions: Sequence[WorkflowDefinition],
    names: Iterable[str] | None = None,
    agents: AgentRegistry = REGISTRY,
    limits: Limits | None = None,
) -> list[CaseResult]:
    """Run the cases of each of ``definitions`` (or of those named), each workflow's children
    among ``definitions``; an agent no case mocks runs as registered in ``agents``. Within
    ``limits`` when given: past its time, each case still running (and each after it) fails."""
    wanted = set(names) if names is not None else {d.name for d in definitions}
    results: list[CaseResult] = []
    bounds: dict[str, Any] = {}
    if limits is not None:
        bounds.update(map_max_items=limits.items, max_descendants=limits.items)
    with Harness(**bounds) as harness:
        if limits is not None:
            harness.deadline = time.monotonic() + limits.seconds
            harness.stop_reason = limits.stop_reason()
        for definition in _children_first(definitions):
            harness.register(definition)
        by_name = {d.name: d for d in definitions}
        for definition in definitions:
            if definition.name not in wanted:
                continue
            for case in definition.tests:
                results.append(run_case(harness, definition, case, by_name, agents))
    return results


def _children_first(definitions: Sequence[WorkflowDefinition]) -> list[WorkflowDefinition]:
    by_name = {d.name: d for d in definitions}
    ordered: list[WorkflowDefinition] = []
    seen: set[str] = set()

    def visit(definition: WorkflowDefinition) -> None:
        if definition.name in seen:
            return
        seen.add(definition.name)
        for child, _ in definition.children:
            if child in by_name:
                visit(by_name[child])
        ordered.append(definition)

    for definition in definitions:
        visit(definition)
    return ordered


def _agents_of(definition: WorkflowDefinition, by_name: Mapping[str, WorkflowDefinition]) -> set[str]:
    """The agents an execution of ``definition`` may run, its children's included."""
    found = set(definition.agents)
    for child, _ in definition.children:
        if child in by_name and child != definition.name:
            found |= _agents_of(by_name[child], by_name)
    return found


def run_case(
    harness: Harness,
    definition: WorkflowDefinition,
    case: CaseDefinition,
    by_name: Mapping[str, WorkflowDefinition],
    agents: AgentRegistry = REGISTRY,
) -> CaseResult:
    began = time.perf_counter()

    def result(status: str | None, differences: list[str], path: list[str] | None = None) -> CaseResult:
        return CaseResult(
            definition.name,
            definition.version,
            case.name,
            not differences,
            status,
            differences,
            path or [],
            round(time.perf_counter() - began, 4),
        )

    missing = [child for child, _ in definition.children if child not in by_name]
    if missing:
        names = ", ".join(sorted(missing))
        return result(None, [f"child workflow {names} is not among the definitions given"])
    unmocked: list[str] = []
    for name in sorted(_agents_of(definition, by_name)):
        if name in case.mocks:
            harness.mock(name, case.mocks[name])
        elif (spec := agents.get(name)) is not None:
            harness.agent(name, spec.function)
        else:
            harness.agent(name, _missing(name, unmocked))
    try:
        run = harness.start(
            definition.name, input=case.input, metadata=case.metadata, version=definition.version
        )
        _drive(harness, run.id, case)
    except WorkflowEngineError as exc:
        return result(None, [f"the execution could not run: {exc}"])
    except Exception as exc:  # a harness fault: one line for the case, the others still run
        return result(None, [f"the execution could not run: {type(exc).__name__}: {exc}"])
    view = harness.view(run.id)
    differences = [
        f"agent {name} ran, and is neither mocked by the case nor registered (WFE_AGENT_MODULES)"
        for name in dict.fromkeys(unmocked)
    ]
    differences += _differences(case, view.status, harness.statuses(run.id), view.output)
    return result(view.status, differences, run.path)


def _missing(name: str, called: list[str]) -> Callable[[AgentContext], Any]:
    """The agent for one neither mocked nor registered: the step fails, and the case with it."""

    def missing(ctx: AgentContext) -> Any:
        called.append(name)
        raise FatalError(f"agent {name!r} is neither mocked nor registered")

    return missing


def _drive(harness: Harness, execution_id: str, case: CaseDefinition) -> None:
    """Work; then give what the case gives (a human task's data, a signal) once it is waited
    for, and work again, until the execution ends or nothing more the case gives is awaited."""
    signals = list(case.signals)
    given: set[str] = set()
    harness.work()
    for _ in range(MAX_ROUNDS):
        if harness.is_done(execution_id):
            return
        waiting = harness.waiting_steps(execution_id)
        human = next((step for step in waiting if step in case.human and step not in given), None)
        if human is not None:
            given.add(human)
            harness.complete(execution_id, human, case.human[human])
            continue
        if not signals:
            return
        signal = signals.pop(0)
        harness.signal(execution_id, signal.name, signal.data)


def _differences(case: CaseDefinition, status: str, steps: Mapping[str, str], output: Any) -> list[str]:
    expect = case.expect
    found = []
    if expect.status is not None and status != expect.status:
        found.append(f"status: expected {expect.status}, got {status}")
    for step, wanted in expect.steps.items():
        got = steps.get(step, "pending")
        if got != wanted:
            found.append(f"steps.{step}: expected {wanted}, got {got}")
    if expect.checks_output and not contains(output, expect.output):
        found.append(f"output: expected {_short(expect.output)}, got {_short(output)}")
    return found


def _short(value: Any, limit: int = 200) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
