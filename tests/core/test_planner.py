from __future__ import annotations

from collections.abc import Iterable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workflow_engine.core.expressions import compile_expression
from workflow_engine.core.graph import Edge, Graph
from workflow_engine.core.planner import Decision, advance, arrival_joins, barrier, plan, start
from workflow_engine.core.states import StepStatus

S = StepStatus
CONDITION = compile_expression("input.go")


class Run:
    """Drives the incremental planner the way the coordinator does, with in-memory barriers."""

    def __init__(self, steps: Iterable[str], edges: Iterable[tuple[str, str, bool | None]]) -> None:
        self.truth: dict[tuple[str, str], bool] = {}
        graph_edges = []
        for source, target, truth in edges:
            graph_edges.append(Edge(source, target, None if truth is None else CONDITION))
            if truth is not None:
                self.truth[(source, target)] = truth
        self.graph = Graph(list(steps), graph_edges)
        self.barriers: dict[str, tuple[int, int]] = {}
        self.arrivals = 0

    def edge_is_live(self, edge: Edge) -> bool:
        return self.truth[(edge.source, edge.target)]

    def arrive(self, join: str, live: bool, degree: int) -> tuple[int, int]:
        self.arrivals += 1
        remaining, count = self.barriers.get(join, (degree, 0))
        self.barriers[join] = (remaining - 1, count + int(live))
        return self.barriers[join]

    def resolve(self, step: str, status: S = S.SUCCEEDED) -> Decision:
        return advance(self.graph, step, status, self.edge_is_live, self.arrive)


def test_sequential_steps_become_ready_one_after_the_other() -> None:
    run = Run("abc", [("a", "b", None), ("b", "c", None)])
    assert start(run.graph).ready == ["a"]
    assert run.resolve("a").ready == ["b"]
    assert run.resolve("b").ready == ["c"]
    assert run.resolve("c") == Decision()


def test_fan_out_makes_every_branch_ready_at_once() -> None:
    run = Run("abcd", [("a", "b", None), ("a", "c", None), ("a", "d", None)])
    assert run.resolve("a").ready == ["b", "c", "d"]


def test_join_runs_once_after_its_last_predecessor() -> None:
    run = Run("abcd", [("a", "b", None), ("a", "c", None), ("b", "d", None), ("c", "d", None)])
    run.resolve("a")
    assert run.resolve("b").ready == []
    assert run.resolve("c").ready == ["d"]


def test_false_condition_skips_the_target_and_skips_propagate_down_the_chain() -> None:
    run = Run("abcd", [("a", "b", False), ("b", "c", None), ("c", "d", None)])
    decision = run.resolve("a")
    assert decision.ready == [] and decision.skipped == ["b", "c", "d"]


def test_conditional_branches_take_only_the_true_edge() -> None:
    run = Run(["review", "approve", "reject"], [("review", "approve", True), ("review", "reject", False)])
    decision = run.resolve("review")
    assert decision.ready == ["approve"] and decision.skipped == ["reject"]


def test_join_runs_when_one_live_predecessor_remains_and_others_are_skipped() -> None:
    run = Run("abcd", [("a", "b", True), ("a", "c", False), ("b", "d", None), ("c", "d", None)])
    first = run.resolve("a")
    assert first.ready == ["b"] and first.skipped == ["c"]
    assert run.resolve("b").ready == ["d"]


def test_join_is_skipped_when_every_predecessor_is_skipped() -> None:
    run = Run("abcd", [("a", "b", False), ("a", "c", False), ("b", "d", None), ("c", "d", None)])
    decision = run.resolve("a")
    assert decision.skipped == ["b", "c", "d"] and decision.ready == []


def test_successors_of_a_failed_optional_step_still_run() -> None:
    run = Run("abc", [("a", "b", None), ("b", "c", None)])
    assert run.resolve("a", S.FAILED).ready == ["b"]


def test_conditions_of_a_skipped_source_are_never_evaluated() -> None:
    run = Run("abc", [("a", "b", False), ("b", "c", True)])
    run.truth[("b", "c")] = None  # type: ignore[assignment]  # would fail if evaluated
    assert run.resolve("a").skipped == ["b", "c"]


def test_advancing_from_an_unresolved_step_is_an_error() -> None:
    run = Run("ab", [("a", "b", None)])
    with pytest.raises(ValueError, match="not resolved"):
        run.resolve("a", S.RUNNING)


def test_full_plan_reports_ready_skipped_completion_and_percent() -> None:
    run = Run("abcd", [("a", "b", True), ("a", "c", False), ("b", "d", None), ("c", "d", None)])
    initial = plan(run.graph, {}, run.edge_is_live)
    assert initial.ready == ("a",) and initial.percent == 0.0 and not initial.complete
    middle = plan(run.graph, {"a": S.SUCCEEDED}, run.edge_is_live)
    assert middle.ready == ("b",) and middle.skipped == ("c",)
    assert middle.resolved == 2 and middle.percent == 50.0
    done = plan(
        run.graph, {"a": S.SUCCEEDED, "b": S.SUCCEEDED, "c": S.SKIPPED, "d": S.SUCCEEDED}, run.edge_is_live
    )
    assert done.complete and done.percent == 100.0 and done.ready == ()


def test_full_plan_does_not_offer_steps_that_are_running() -> None:
    run = Run("ab", [("a", "b", None)])
    assert plan(run.graph, {"a": S.RUNNING}, run.edge_is_live).ready == ()


def test_barrier_rebuilt_from_states_counts_unresolved_and_live_edges() -> None:
    run = Run("abcd", [("a", "d", True), ("b", "d", False), ("c", "d", None)])
    states = {"a": S.SUCCEEDED, "b": S.SUCCEEDED}
    assert barrier(run.graph, "d", states, run.edge_is_live) == (1, 1)


def test_wide_join_costs_one_barrier_arrival_per_branch() -> None:
    width = 300
    branches = [f"b{i}" for i in range(width)]
    edges = [("start", b, None) for b in branches] + [(b, "join", None) for b in branches]
    run = Run(["start", *branches, "join"], edges)
    assert len(run.resolve("start").ready) == width
    readies = [run.resolve(b).ready for b in branches]
    assert readies[-1] == ["join"] and all(r == [] for r in readies[:-1])
    assert run.arrivals == width


@st.composite
def dags(draw: st.DrawFn) -> tuple[list[str], list[tuple[str, str, bool | None]]]:
    size = draw(st.integers(2, 9))
    names = [f"s{i}" for i in range(size)]
    pairs = [(i, j) for i in range(size) for j in range(i + 1, size)]
    chosen = draw(st.lists(st.sampled_from(pairs), unique=True, max_size=len(pairs)))
    edges = [(names[i], names[j], draw(st.sampled_from([None, None, True, False]))) for i, j in chosen]
    return names, edges


@settings(max_examples=300, deadline=None)
@given(dag=dags(), data=st.data())
def test_incremental_planning_agrees_with_full_planning_at_every_step(
    dag: tuple[list[str], list[tuple[str, str, bool | None]]], data: st.DataObject
) -> None:
    names, edges = dag
    run = Run(names, edges)
    states: dict[str, str] = {}
    outstanding = list(start(run.graph).ready)
    while outstanding:
        assert len(set(outstanding)) == len(outstanding), "a step became ready twice"
        full = plan(run.graph, states, run.edge_is_live)
        assert set(full.ready) == set(outstanding) and full.skipped == ()
        step = outstanding.pop(data.draw(st.integers(0, len(outstanding) - 1)))
        status = data.draw(st.sampled_from([S.SUCCEEDED, S.SUCCEEDED, S.FAILED]))
        states[step] = status
        decision = run.resolve(step, status)
        states.update(dict.fromkeys(decision.skipped, S.SKIPPED))
        outstanding.extend(decision.ready)
    final = plan(run.graph, states, run.edge_is_live)
    assert final.complete and final.ready == () and len(states) == len(names)


def graph_of(
    steps: str, edges: Iterable[tuple[str, str]], conditional: Iterable[tuple[str, str]] = ()
) -> Graph:
    marked = set(conditional)
    return Graph(list(steps), [Edge(a, b, CONDITION if (a, b) in marked else None) for a, b in edges])


def test_a_branch_into_joins_only_counts_toward_them() -> None:
    # s fans out to a, b, c; a and b meet in j; c and j meet in k
    graph = graph_of(
        "sabcjk", [("s", "a"), ("s", "b"), ("s", "c"), ("a", "j"), ("b", "j"), ("c", "k"), ("j", "k")]
    )
    assert arrival_joins(graph, "a") == {"j": 2}
    assert arrival_joins(graph, "c") == {"k": 2}
    assert arrival_joins(graph, "s") is None  # its successors have one predecessor: they become ready
    assert arrival_joins(graph, "k") is None  # the only final step: always the last to resolve
    assert graph.has_siblings("a") and graph.has_siblings("c")
    assert not graph.has_siblings("s") and not graph.has_siblings("k")


def test_a_conditional_edge_or_a_final_step_among_several_is_decided_by_the_planner() -> None:
    graph = graph_of("sabj", [("s", "a"), ("s", "b"), ("a", "j"), ("b", "j")], conditional=[("a", "j")])
    assert arrival_joins(graph, "a") is None  # its edge's condition needs the execution's data
    assert arrival_joins(graph, "b") == {"j": 2}
    sinks = graph_of("sab", [("s", "a"), ("s", "b")])
    assert arrival_joins(sinks, "a") == {}  # one of two final steps: counts toward completion only
