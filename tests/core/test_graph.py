from __future__ import annotations

import itertools

import pytest

from workflow_engine.core.graph import Edge, Graph


def chain(*names: str) -> Graph:
    return Graph(names, [Edge(a, b) for a, b in itertools.pairwise(names)])


def test_topological_order_follows_edges_and_listing_order() -> None:
    graph = Graph("abcd", [Edge("a", "c"), Edge("b", "c"), Edge("c", "d")])
    assert graph.order == ("a", "b", "c", "d")
    assert graph.roots == ("a", "b")


def test_find_cycle_names_the_cycle_in_edge_order() -> None:
    graph = Graph("abcd", [Edge("a", "b"), Edge("b", "c"), Edge("c", "d"), Edge("d", "b")])
    assert graph.find_cycle() == ["b", "c", "d", "b"]


def test_self_loop_is_a_cycle() -> None:
    assert Graph("a", [Edge("a", "a")]).find_cycle() == ["a", "a"]


def test_acyclic_graph_has_no_cycle_and_cyclic_graph_has_no_order() -> None:
    assert chain("a", "b", "c").find_cycle() is None
    with pytest.raises(ValueError, match="cycle"):
        _ = Graph("ab", [Edge("a", "b"), Edge("b", "a")]).order


def test_ancestors_and_descendants_include_the_step_itself() -> None:
    graph = Graph("abcde", [Edge("a", "b"), Edge("b", "c"), Edge("a", "d"), Edge("d", "e")])
    assert graph.descendants("b") == {"b", "c"}
    assert graph.ancestors("e") == {"a", "d", "e"}


def test_deep_chain_needs_no_recursion() -> None:
    names = [f"s{i}" for i in range(20_000)]
    graph = chain(*names)
    assert graph.find_cycle() is None
    assert len(graph.order) == 20_000
