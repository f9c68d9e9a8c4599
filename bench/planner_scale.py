"""How the pure planner scales: chains and fan-outs of growing size, planned end to end.

Run: .venv/bin/python bench/planner_scale.py
For each shape and size it times validation of the definition, compiling the graph, a full
plan from scratch, and driving the incremental planner through every step (what the
coordinator does over the life of an execution). Cost should grow linearly with size.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from workflow_engine.core.graph import Edge, Graph
from workflow_engine.core.planner import advance, plan, start
from workflow_engine.core.states import StepStatus
from workflow_engine.definitions import WorkflowDefinition, load_document


def chain(size: int) -> dict[str, object]:
    return {"name": "chain", "steps": [{"name": f"s{i}", "agent": "noop"} for i in range(size)]}


def fan(size: int) -> dict[str, object]:
    branches = [f"b{i}" for i in range(size)]
    return {
        "name": "fan",
        "steps": [{"name": n, "agent": "noop"} for n in ["start", *branches, "join"]],
        "edges": [{"from": "start", "to": b} for b in branches]
        + [{"from": b, "to": "join"} for b in branches],
    }


def drive(graph: Graph) -> int:
    """Resolve every step in turn through the incremental planner; returns steps resolved."""
    barriers: dict[str, tuple[int, int]] = {}

    def arrive(join: str, live: bool, degree: int) -> tuple[int, int]:
        remaining, count = barriers.get(join, (degree, 0))
        barriers[join] = (remaining - 1, count + int(live))
        return barriers[join]

    def never(_: Edge) -> bool:
        raise AssertionError("no conditions here")

    ready = list(start(graph).ready)
    done = 0
    while ready:
        step = ready.pop()
        done += 1
        ready.extend(advance(graph, step, StepStatus.SUCCEEDED, never, arrive).ready)
    return done


def timed(action: Callable[[], object]) -> tuple[float, object]:
    began = time.perf_counter()
    result = action()
    return (time.perf_counter() - began) * 1000, result


def main() -> None:
    print(
        f"{'shape':<6} {'steps':>7} {'validate ms':>12} {'graph ms':>9} "
        f"{'plan ms':>8} {'drive ms':>9} {'µs/step':>8}"
    )
    for shape, build in (("chain", chain), ("fan", fan)):
        for size in (1_000, 2_500, 5_000, 10_000):
            validate_ms, definition = timed(lambda build=build, size=size: load_document(build(size)))
            assert isinstance(definition, WorkflowDefinition)
            graph_ms, graph = timed(lambda d=definition: d.graph)
            assert isinstance(graph, Graph)
            plan_ms, _ = timed(lambda g=graph: plan(g, {}, lambda e: True))
            drive_ms, resolved = timed(lambda g=graph: drive(g))
            assert resolved == len(graph), (resolved, len(graph))
            per_step = (plan_ms + drive_ms) * 1000 / len(graph)
            print(
                f"{shape:<6} {len(graph):>7} {validate_ms:>12.1f} {graph_ms:>9.1f} "
                f"{plan_ms:>8.1f} {drive_ms:>9.1f} {per_step:>8.2f}"
            )


if __name__ == "__main__":
    main()
