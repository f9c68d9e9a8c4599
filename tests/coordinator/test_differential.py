"""The fast ways of recording outcomes against the plain one, on random workflows.

Hypothesis draws layered DAGs (chains, fan-outs, joins), conditions on edges, optional steps,
what each attempt of each step does (succeeds, fails transiently, fails for good) and the order
in which messages are delivered. Each scenario runs twice on the same store: once with every
fast path on (outcomes counted toward joins in one statement, planned against the row the
previous outcome wrote, steps run in place, wide fan-outs carried) and once with all of them
off, every outcome decided under the lock. What each attempt does depends only on its step and
attempt number, so whatever the order, both runs must end the same: the execution's status,
and for a completed one each step's final status, attempts and history. (Which steps had run
when a required step failed for good depends on the order: a failed run is compared by its
status and by the step it failed on being one bound to fail.)

``WFE_DIFFERENTIAL_EXAMPLES`` sets how many scenarios are drawn (a few by default).
"""

from __future__ import annotations

import itertools
import os
import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.support.harness import Harness
from workflow_engine.agents import AgentContext
from workflow_engine.core import planner
from workflow_engine.definitions import WorkflowBuilder
from workflow_engine.errors import FatalError, TransientError

EXAMPLES = int(os.environ.get("WFE_DIFFERENTIAL_EXAMPLES", "25"))
OUTCOMES = ("ok", "transient", "fatal")
_NAMES = itertools.count()


@dataclass(frozen=True)
class Scenario:
    layers: list[list[str]]
    edges: list[tuple[str, str, str | None]]
    optional: frozenset[str]
    attempts: dict[str, list[str]]  # what each attempt of a step does, in order
    flag: bool
    order_seed: int


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    widths = draw(st.lists(st.integers(1, 4), min_size=1, max_size=4))
    layers = [[f"s{depth}_{i}" for i in range(width)] for depth, width in enumerate(widths)]
    edges: list[tuple[str, str, str | None]] = []
    for upper, lower in itertools.pairwise(layers):
        pairs = set()
        for target in lower:
            least = draw(st.sampled_from([1, min(2, len(upper))]))  # joins, often
            sources = draw(st.lists(st.sampled_from(upper), min_size=least, max_size=len(upper), unique=True))
            pairs |= {(source, target) for source in sources}
        for source in upper:  # every step leads somewhere: none is unreachable
            if not any(s == source for s, _ in pairs):
                pairs.add((source, draw(st.sampled_from(lower))))
        for source, target in sorted(pairs):
            when = draw(st.sampled_from([None, None, None, "input.flag", "not input.flag"]))
            edges.append((source, target, when))
    names = [name for layer in layers for name in layer]
    optional = frozenset(draw(st.lists(st.sampled_from(names), unique=True, max_size=2)))
    attempts = {
        name: draw(
            st.lists(st.sampled_from(OUTCOMES), min_size=1, max_size=3).map(
                lambda tries: [*tries[: tries.index("ok") + 1]] if "ok" in tries else tries
            )
        )
        for name in names
    }
    return Scenario(layers, edges, optional, attempts, draw(st.booleans()), draw(st.integers(0, 2**16)))


def build(name: str, scenario: Scenario) -> WorkflowBuilder:
    builder = WorkflowBuilder(name)
    for layer in scenario.layers:
        for step in layer:
            builder.agent(
                step,
                "scripted",
                required=step not in scenario.optional,
                retry={"max_attempts": 3, "initial_delay": 0.5},
            )
    for source, target, when in scenario.edges:
        builder.edge(source, target, when=when)
    return builder


def scripted(scenario: Scenario) -> Any:
    def agent(ctx: AgentContext) -> dict[str, Any]:
        tries = scenario.attempts[ctx.step_name]
        outcome = tries[min(ctx.attempt, len(tries)) - 1]
        if outcome == "transient":
            raise TransientError(f"{ctx.step_name} attempt {ctx.attempt}")
        if outcome == "fatal":
            raise FatalError(f"{ctx.step_name} gave up")
        return {"step": ctx.step_name, "attempt": ctx.attempt}

    return agent


@contextmanager
def plain_paths(harness: Harness) -> Iterator[None]:
    """Every outcome decided under the lock: nothing counted, planned, carried or run in place."""
    counted_joins = planner.counted_joins
    planner.counted_joins = lambda graph, name: None  # type: ignore[assignment]
    harness.inline_steps = 0
    try:
        yield
    finally:
        planner.counted_joins = counted_joins


def run(harness: Harness, name: str, scenario: Scenario) -> dict[str, Any]:
    harness.agent("scripted", scripted(scenario))
    harness.register(build(name, scenario))
    record = harness.start(name, input_data={"flag": scenario.flag})
    shuffle = random.Random(scenario.order_seed)
    for _ in range(10_000):
        harness.broker.queue.sort(key=lambda _: shuffle.random())  # any order the broker may take
        if not harness.deliver_one():
            break
    view = harness.view(record.id)
    failed_on = view.error.get("step") if view.error else None
    steps = {}
    for step in view.steps:
        runs = harness.runs(record.id, step.name)
        history = [(f, to) for s, f, to in harness.history(record.id) if s == step.name]
        steps[step.name] = (step.status, len(runs), history)
    return {"status": view.status, "steps": steps, "failed_on": failed_on}


def comparable(result: dict[str, Any], scenario: Scenario) -> dict[str, Any]:
    """What both paths must agree on (whether a step went by message or in place shows in
    neither statuses nor attempts)."""
    if result["status"] == "failed":
        doomed = {name for name, tries in scenario.attempts.items() if tries[-1] != "ok"}
        return {"status": "failed", "on a step bound to fail": result["failed_on"] in doomed}
    steps = result["steps"]
    return {
        "status": result["status"],
        "steps": {
            name: (status, count, [to for _, to in history])
            for name, (status, count, history) in steps.items()
        },
    }


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],  # a failure is reported as drawn, unshrunk
    derandomize=not os.environ.get("WFE_DIFFERENTIAL_EXAMPLES"),  # the same scenarios every run by default
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(scenario=scenarios())
def test_the_fast_paths_end_where_the_locked_path_does(database_url: str, scenario: Scenario) -> None:
    name = f"diff-{next(_NAMES)}"  # a new workflow each example: versions are immutable
    fast = Harness(database_url, inline_steps=50)
    fast.inline_steps = 50
    plain = Harness(database_url, inline_steps=0)
    try:
        for worker in range(2):  # two live worker processes: wide fan-outs are carried
            fast.store.beat(f"w:{worker}", "host", worker, ["scripted"], [fast.settings.steps_queue], [])
        quick = run(fast, f"{name}-fast", scenario)
        with plain_paths(plain):
            locked = run(plain, f"{name}-plain", scenario)
    finally:
        fast.close()
        plain.close()
    assert quick["status"] in ("completed", "failed"), (scenario, quick)
    assert comparable(quick, scenario) == comparable(locked, scenario), (scenario, quick, locked)
