"""Which steps are ready, which are skipped, and when a workflow is done: pure decisions.

Rules. A step with no incoming edge is ready at the start. An edge is *live* when its source
succeeded (or failed while optional) and its condition, if any, is true; it is *dead* when the
source was skipped or the condition is false. A step waits until every predecessor is resolved
(a join); it is then ready if at least one incoming edge is live, and skipped otherwise, which
makes its own outgoing edges dead (skips propagate). The workflow is complete when every step is
resolved.

Two entry points give the same answers: :func:`plan` recomputes from the status of every step
(linear in the DAG), and :func:`advance` reacts to one step's resolution, touching only the
edges that leave it; joins keep a counter through the ``arrive`` callback so a join of any width
costs O(1) per arrival. Conditions are evaluated through the ``edge_is_live`` callback, which
the caller backs with the execution's data.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from workflow_engine.core.graph import Edge, Graph
from workflow_engine.core.states import RESOLVED_STEP, StepStatus

EdgeTest = Callable[[Edge], bool]
"""Evaluates an edge's condition (only called for edges that have one and a live source)."""

Arrive = Callable[[str, bool, int], tuple[int, int]]
"""``arrive(join, live, in_degree)`` records one resolved predecessor of a join and returns
``(predecessors still unresolved, live edges so far)``; it must be atomic per join."""


@dataclass
class Decision:
    """Steps that become ready to dispatch, and steps that are skipped, in the order found."""

    ready: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Plan:
    ready: tuple[str, ...]
    skipped: tuple[str, ...]
    resolved: int
    total: int

    @property
    def complete(self) -> bool:
        return self.resolved == self.total

    @property
    def percent(self) -> float:
        return percent_complete(self.resolved, self.total)


def percent_complete(resolved: int, total: int) -> float:
    return round(100.0 * resolved / total, 1) if total else 100.0


def start(graph: Graph) -> Decision:
    """What runs first: every step without a predecessor."""
    return Decision(ready=list(graph.roots))


def _edge_live(edge: Edge, source_status: str, edge_is_live: EdgeTest) -> bool:
    if source_status == StepStatus.SKIPPED:
        return False
    return edge.condition is None or edge_is_live(edge)


def advance(
    graph: Graph,
    step: str,
    status: StepStatus,
    edge_is_live: EdgeTest,
    arrive: Arrive,
) -> Decision:
    """What becomes ready or skipped now that ``step`` resolved as ``status``."""
    if status not in RESOLVED_STEP:
        raise ValueError(f"step {step!r} is {status}, not resolved")
    decision = Decision()
    frontier: deque[tuple[str, str]] = deque([(step, status)])
    while frontier:
        source, source_status = frontier.popleft()
        for edge in graph.outgoing[source]:
            live = _edge_live(edge, source_status, edge_is_live)
            target = edge.target
            degree = len(graph.incoming[target])
            if degree == 1:
                runs = live
            else:
                remaining, live_count = arrive(target, live, degree)
                if remaining > 0:
                    continue
                runs = live_count > 0
            if runs:
                decision.ready.append(target)
            else:
                decision.skipped.append(target)
                frontier.append((target, StepStatus.SKIPPED))
    return decision


def arrival_joins(graph: Graph, step: str) -> dict[str, int] | None:
    """The joins a success of ``step`` can only count toward, with their in-degrees, when that
    is all its success can do: every edge leaving it is unconditional and enters a join (none:
    a final step). None otherwise. Whether one of the joins becomes due by it depends on how
    many of its other predecessors have resolved, which only the execution's counters know."""
    if not graph.outgoing[step] and len(graph.sinks) == 1:
        return None  # the only final step: every other step resolves before it
    joins: dict[str, int] = {}
    for edge in graph.outgoing[step]:
        degree = graph.in_degree(edge.target)
        if edge.condition is not None or degree < 2 or edge.target in joins:
            return None
        joins[edge.target] = degree
    return joins


def plan(graph: Graph, states: Mapping[str, str], edge_is_live: EdgeTest) -> Plan:
    """Recompute from scratch, given the status of each step that has one (absent: not begun)."""
    effective: dict[str, str] = dict(states)
    ready: list[str] = []
    skipped: list[str] = []
    for name in graph.order:
        if name in effective:
            continue
        incoming = graph.incoming[name]
        if not incoming:
            ready.append(name)
            continue
        if any(effective.get(edge.source) not in RESOLVED_STEP for edge in incoming):
            continue
        if any(_edge_live(edge, effective[edge.source], edge_is_live) for edge in incoming):
            ready.append(name)
        else:
            skipped.append(name)
            effective[name] = StepStatus.SKIPPED
    resolved = sum(1 for status in effective.values() if status in RESOLVED_STEP)
    return Plan(tuple(ready), tuple(skipped), resolved, len(graph))


def barrier(graph: Graph, join: str, states: Mapping[str, str], edge_is_live: EdgeTest) -> tuple[int, int]:
    """A join's counter rebuilt from its predecessors: (unresolved, live edges so far)."""
    remaining = live = 0
    for edge in graph.incoming[join]:
        source_status = states.get(edge.source)
        if source_status not in RESOLVED_STEP:
            remaining += 1
        elif _edge_live(edge, source_status, edge_is_live):
            live += 1
    return remaining, live
