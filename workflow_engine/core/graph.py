"""A workflow's DAG compiled for planning: adjacency, topological order, cycles, ancestry."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from workflow_engine.core.expressions import Expression


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    condition: Expression | None = field(default=None, compare=False)

    def label(self) -> str:
        return f"{self.source} → {self.target}"


class Graph:
    """Steps and edges with O(1) neighbour lookup; every walk over it is linear in its size."""

    def __init__(self, steps: Sequence[str], edges: Iterable[Edge]) -> None:
        self.steps: tuple[str, ...] = tuple(steps)
        self.outgoing: dict[str, list[Edge]] = {name: [] for name in self.steps}
        self.incoming: dict[str, list[Edge]] = {name: [] for name in self.steps}
        for edge in edges:
            self.outgoing[edge.source].append(edge)
            self.incoming[edge.target].append(edge)
        self.roots: tuple[str, ...] = tuple(n for n in self.steps if not self.incoming[n])
        self.sinks: tuple[str, ...] = tuple(n for n in self.steps if not self.outgoing[n])
        # of each step, its outgoing edges that have a condition
        self.conditional: dict[str, list[Edge]] = {
            name: [edge for edge in out if edge.condition is not None] for name, out in self.outgoing.items()
        }
        self._order: tuple[str, ...] | None = None

    def __len__(self) -> int:
        return len(self.steps)

    def in_degree(self, name: str) -> int:
        return len(self.incoming[name])

    def has_siblings(self, name: str) -> bool:
        """Whether a step that ``name`` follows is followed by other steps too (a fan-out)."""
        return any(len(self.outgoing[edge.source]) > 1 for edge in self.incoming[name])

    @property
    def order(self) -> tuple[str, ...]:
        """A topological order (Kahn's algorithm, listing order among equals)."""
        if self._order is None:
            remaining = {name: len(edges) for name, edges in self.incoming.items()}
            queue = deque(name for name in self.steps if remaining[name] == 0)
            order: list[str] = []
            while queue:
                name = queue.popleft()
                order.append(name)
                for edge in self.outgoing[name]:
                    remaining[edge.target] -= 1
                    if remaining[edge.target] == 0:
                        queue.append(edge.target)
            if len(order) != len(self.steps):
                raise ValueError("graph has a cycle")
            self._order = tuple(order)
        return self._order

    def find_cycle(self) -> list[str] | None:
        """One cycle as ``[a, b, ..., a]``, or None: iterative DFS, linear in the graph."""
        white, grey, black = 0, 1, 2
        colour = dict.fromkeys(self.steps, white)
        parent: dict[str, str] = {}
        for start in self.steps:
            if colour[start] != white:
                continue
            stack: list[tuple[str, int]] = [(start, 0)]
            colour[start] = grey
            while stack:
                node, index = stack[-1]
                edges = self.outgoing[node]
                if index == len(edges):
                    colour[node] = black
                    stack.pop()
                    continue
                stack[-1] = (node, index + 1)
                nxt = edges[index].target
                if colour[nxt] == white:
                    colour[nxt] = grey
                    parent[nxt] = node
                    stack.append((nxt, 0))
                elif colour[nxt] == grey:
                    cycle = [nxt, node]
                    while cycle[-1] != nxt:
                        cycle.append(parent[cycle[-1]])
                    cycle.reverse()
                    return cycle
        return None

    def reachable_from(self, starts: Iterable[str], forward: bool = True) -> set[str]:
        """Every step reachable from ``starts`` (included), following or against the edges."""
        seen = set(starts)
        queue = deque(seen)
        while queue:
            node = queue.popleft()
            edges = self.outgoing[node] if forward else self.incoming[node]
            for edge in edges:
                nxt = edge.target if forward else edge.source
                if nxt not in seen:
                    seen.add(nxt)
                    queue.append(nxt)
        return seen

    def descendants(self, name: str) -> set[str]:
        """``name`` and every step downstream of it."""
        return self.reachable_from([name])

    def ancestors(self, name: str) -> set[str]:
        """``name`` and every step upstream of it."""
        return self.reachable_from([name], forward=False)
