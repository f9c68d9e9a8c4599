"""W2s: W2's burst (200 five-step chains) where every step reads one secret and writes one,
against the same chains with nothing declared secret, interleaved in the same run: what
sealing and opening cost."""

from __future__ import annotations

import statistics
from collections.abc import Callable

from bench.flow_control import bursts
from bench.harness import Bench, Result
from workflow_engine.definitions import WorkflowBuilder


def keyed_chain(name: str, secret: bool) -> Callable[[], WorkflowBuilder]:
    def build() -> WorkflowBuilder:
        builder = WorkflowBuilder(name)
        for index in range(5):
            builder.agent(f"s{index}", "bench.keyed")
        if secret:
            builder.secrets("input.key", *(f"steps.s{index}.token" for index in range(5)))
        return builder

    return build


def secret_burst(bench: Bench, quick: bool) -> Result:
    count, runs = (100, 3) if quick else (200, 5)
    sealed = bench.workflow("burst5s", keyed_chain("burst5s", True))
    plain = bench.workflow("burst5p", keyed_chain("burst5p", False))

    key = lambda n: {"key": f"sk-{n:08d}"}  # noqa: E731
    with_secrets, without = bursts(bench, "W2s", runs, count, sealed, plain, key)
    result = Result("W2s secret burst", "steps/s", engine=with_secrets, higher_is_better=True)
    result.notes = {
        "workflows": count,
        "without_secrets_steps_per_s": round(statistics.median(without), 1),
        "secret_vs_plain": round(statistics.median(with_secrets) / statistics.median(without), 3),
    }
    return result
