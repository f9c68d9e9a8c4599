"""A workflow's DAG laid out for drawing: layers left to right by longest path from the roots,
each layer ordered by where its steps' predecessors sit, and every group of more than
``FOLD_AT`` steps that share their predecessors and successors (a wide fan-out) folded into one
node. Pure: from the compiled graph alone, so one layout serves every execution of a version.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from workflow_engine.core.graph import Graph

FOLD_AT = 50
WIDTH, HEIGHT = 168, 46  # a node's box
GAP_X, GAP_Y = 56, 18
MARGIN = 12


@dataclass(frozen=True)
class DagNode:
    key: str  # the step's name, or "fold:<first step>" for a folded group
    steps: tuple[str, ...]  # the steps it shows (one, or the folded group)
    layer: int
    x: int
    y: int

    @property
    def folded(self) -> bool:
        return len(self.steps) > 1


@dataclass(frozen=True)
class Layout:
    nodes: tuple[DagNode, ...]
    edges: tuple[tuple[str, str], ...]  # node keys, each pair once
    width: int
    height: int

    def node_of(self) -> dict[str, str]:
        """Each step's node key."""
        return {step: node.key for node in self.nodes for step in node.steps}


def layout(graph: Graph) -> Layout:
    layer_of: dict[str, int] = {}
    for name in graph.order:
        layer_of[name] = max((layer_of[e.source] + 1 for e in graph.incoming[name]), default=0)
    # fold: steps of one layer with the same predecessors and successors, when there are many
    groups: dict[tuple[int, tuple[str, ...], tuple[str, ...]], list[str]] = defaultdict(list)
    for name in graph.order:
        sources = tuple(sorted(e.source for e in graph.incoming[name]))
        targets = tuple(sorted(e.target for e in graph.outgoing[name]))
        groups[(layer_of[name], sources, targets)].append(name)
    members: list[tuple[str, tuple[str, ...], int]] = []  # (key, steps, layer) in order
    key_of: dict[str, str] = {}
    for (layer, _, _), names in groups.items():
        if len(names) > FOLD_AT:
            key = f"fold:{names[0]}"
            members.append((key, tuple(names), layer))
            key_of.update(dict.fromkeys(names, key))
        else:
            for name in names:
                members.append((name, (name,), layer))
                key_of[name] = name
    edges = sorted(
        {(key_of[e.source], key_of[e.target]) for name in graph.order for e in graph.outgoing[name]}
    )
    predecessors: dict[str, set[str]] = defaultdict(set)
    for source, target in edges:
        predecessors[target].add(source)
    # order each layer by the mean position of its nodes' predecessors (one sweep, left to right)
    layers: dict[int, list[tuple[str, tuple[str, ...]]]] = defaultdict(list)
    for key, steps, layer in members:
        layers[layer].append((key, steps))
    position: dict[str, float] = {}
    nodes: list[DagNode] = []
    for layer in sorted(layers):
        entries = layers[layer]
        if layer:
            entries.sort(
                key=lambda entry: (
                    sum(position[p] for p in predecessors[entry[0]]) / max(1, len(predecessors[entry[0]]))
                )
            )
        for index, (key, steps) in enumerate(entries):
            position[key] = index
            x = MARGIN + layer * (WIDTH + GAP_X)
            y = MARGIN + index * (HEIGHT + GAP_Y)
            nodes.append(DagNode(key, steps, layer, x, y))
    depth = max(layers, default=0) + 1
    tallest = max((len(entries) for entries in layers.values()), default=1)
    return Layout(
        tuple(nodes),
        tuple(edges),
        width=2 * MARGIN + depth * WIDTH + (depth - 1) * GAP_X,
        height=2 * MARGIN + tallest * HEIGHT + (tallest - 1) * GAP_Y,
    )
