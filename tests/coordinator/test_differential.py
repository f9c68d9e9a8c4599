"""The fast ways of recording outcomes against the plain one, on random workflows.

Hypothesis draws layered DAGs (chains, fan-outs, joins), conditions on edges, optional steps,
what each attempt of each step does (succeeds, fails transiently, fails for good) and the order
in which messages are delivered. Each scenario runs twice on the same store: once with every
fast path on (outcomes counted toward joins in one statement, planned against the row the
previous outcome wrote, steps run in place, wide fan-outs carried; on PostgreSQL two
messages delivered at once from two threads, so that siblings' outcomes race) and once with
all of them off, every outcome decided under the lock, one message at a time. What each
attempt does depends only on its step and attempt number, so whatever the order, both runs
must end the same: the execution's status,
and for a completed one each step's final status, attempts and history. (Which steps had run
when a required step failed for good depends on the order: a failed run is compared by its
status and by the step it failed on being one bound to fail.)

``WFE_DIFFERENTIAL_EXAMPLES`` sets how many scenarios are drawn (a few by default).
"""

from __future__ import annotations

import itertools
import json
import os
import random
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from dataclasses import fields as dataclass_fields
from types import SimpleNamespace
from typing import Any

from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st

from tests.support.harness import Harness
from tests.support.model import Model
from workflow_engine.agents import AgentContext
from workflow_engine.core import planner
from workflow_engine.core.retry import classify, error_type
from workflow_engine.decisions import control
from workflow_engine.decisions.outcomes import Failure, Outcome, Success
from workflow_engine.decisions.unit import Unit
from workflow_engine.definitions import WorkflowBuilder
from workflow_engine.errors import (
    FatalError,
    InvalidOperation,
    InvalidTransition,
    StepNotFound,
    TransientError,
)
from workflow_engine.worker.executor import describe

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


def build(name: str, scenario: Scenario, humans: frozenset[str] = frozenset()) -> WorkflowBuilder:
    builder = WorkflowBuilder(name)
    for layer in scenario.layers:
        for step in layer:
            if step in humans:
                builder.human(step, required=step not in scenario.optional)
                continue
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
    arrival_joins = planner.arrival_joins
    planner.arrival_joins = lambda graph, name: None  # type: ignore[assignment]
    harness.inline_steps = 0
    try:
        yield
    finally:
        planner.arrival_joins = arrival_joins


def deliver_together(harness: Harness) -> bool:
    """Deliver the first two due messages at once, from two threads (siblings finishing
    together); advance the clock to the next ETA when none is due."""
    queue = harness.broker.queue
    if not queue:
        return False
    due = [d for d in queue if d.eta is None or d.eta <= harness.clock.now()][:2]
    if not due:
        harness.clock.current = min(d.eta for d in queue if d.eta is not None)
        return True
    for item in due:
        queue.remove(item)
    start = threading.Barrier(len(due))
    failures: list[BaseException] = []

    def deliver(item: Any) -> None:
        start.wait()
        try:
            if item.kind == "timer":
                harness.coordinator.fire_timer(item.run_id)
            else:
                harness.executor.execute(item.run_id, item.task_id, harness.inline_steps)
        except BaseException as error:  # reported by the test's thread
            failures.append(error)

    threads = [threading.Thread(target=deliver, args=(item,)) for item in due]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]
    return True


def run(harness: Harness, name: str, scenario: Scenario, together: bool = False) -> dict[str, Any]:
    harness.agent("scripted", scripted(scenario))
    harness.register(build(name, scenario))
    record = harness.start(name, input_data={"flag": scenario.flag})
    shuffle = random.Random(scenario.order_seed)
    for _ in range(10_000):
        harness.broker.queue.sort(key=lambda _: shuffle.random())  # any order the broker may take
        if not (deliver_together(harness) if together else harness.deliver_one()):
            break
    view = harness.view(record.id)
    failed_on = view.error.get("step") if view.error else None
    steps = {}
    for step in view.steps:
        runs = harness.runs(record.id, step.name)
        history = [(f, to) for s, f, to in harness.history(record.id) if s == step.name]
        steps[step.name] = (step.status, len(runs), history)
    return {"status": view.status, "steps": steps, "failed_on": failed_on}


def bound_to_fail(tries: list[str], max_attempts: int = 3) -> bool:
    """Whether a step whose attempts do ``tries`` (the last repeating) fails for good: a fatal
    error before any success, or no success within its attempts."""
    for attempt in range(1, max_attempts + 1):
        outcome = tries[min(attempt, len(tries)) - 1]
        if outcome != "transient":
            return outcome == "fatal"
    return True


def comparable(result: dict[str, Any], scenario: Scenario) -> dict[str, Any]:
    """What both paths must agree on (whether a step went by message or in place shows in
    neither statuses nor attempts)."""
    if result["status"] == "failed":
        doomed = {name for name, tries in scenario.attempts.items() if bound_to_fail(tries)}
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
        # siblings' outcomes arrive together on PostgreSQL (SQLite runs one writer at a time)
        together = not database_url.startswith("sqlite")
        quick = run(fast, f"{name}-fast", scenario, together)
        with plain_paths(plain):
            locked = run(plain, f"{name}-plain", scenario)
    finally:
        fast.close()
        plain.close()
    assert quick["status"] in ("completed", "failed"), (scenario, quick)
    assert comparable(quick, scenario) == comparable(locked, scenario), (scenario, quick, locked)


VERBS = ("pause", "resume", "cancel", "retry", "next", "complete")


def outcome_of(scenario: Scenario) -> Callable[[str, int], Outcome]:
    """What the scripted agent gives for an attempt, as the worker reports it."""
    agent = scripted(scenario)

    def outcome(step: str, attempt: int) -> Outcome:
        try:
            output = agent(SimpleNamespace(step_name=step, attempt=attempt))  # type: ignore[arg-type]
        except Exception as error:
            return Failure(classify(error), error_type(error), describe(error), 0)
        return Success(output, 0)

    return outcome


REFUSALS = (InvalidOperation, InvalidTransition, StepNotFound)


def verb_on_coordinator(harness: Harness, execution_id: str, verb: str, human: str) -> str | None:
    coordinator = harness.coordinator
    act = {
        "pause": lambda: coordinator.pause(execution_id, "ops"),
        "resume": lambda: coordinator.resume(execution_id, "ops"),
        "cancel": lambda: coordinator.cancel(execution_id, "ops"),
        "retry": lambda: coordinator.retry(execution_id, "ops"),
        "next": lambda: coordinator.next_step(execution_id, "ops"),
        "complete": lambda: coordinator.complete_step(execution_id, human, {"by": "ops"}, "ops"),
    }[verb]
    try:
        act()
    except REFUSALS as refused:
        return type(refused).__name__
    return None


def verb_on_model(model: Model, verb: str, human: str) -> str | None:
    act: Callable[[Unit], Any] = {
        "pause": control.pause,
        "resume": control.resume,
        "cancel": control.cancel,
        "retry": control.retry,
        "next": control.next_step,
        "complete": lambda unit: control.complete_step(unit, human, {"by": "ops"}, "ops", None),
    }[verb]
    try:
        model.decide("ops", act)
    except REFUSALS as refused:
        return type(refused).__name__
    return None


def drive(
    verbs: list[tuple[int, str]], deliver: Callable[[], bool], verb: Callable[[str], str | None]
) -> list[str | None]:
    """Deliver messages in the scenario's order, applying ``verbs`` (after how many deliveries,
    which) on the way. Once nothing is left to deliver, a paused execution is resumed, the next
    step of one in step mode released, a human task completed, and a failed execution retried,
    once. What became of each verb (None: applied, or what refused it)."""
    said: list[str | None] = []
    pending = sorted(verbs)
    retried = False
    for delivered in range(10_000):
        while pending and pending[0][0] <= delivered:
            said.append(verb(pending.pop(0)[1]))
        if deliver() or pending:
            continue
        moved = False
        for nudge in ("resume", "next", "complete"):
            said.append(verb(nudge))
            if said[-1] is None:
                moved = True
                break
        if moved:
            continue
        if retried:
            break
        retried = True
        said.append(verb("retry"))
    return said


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    derandomize=not os.environ.get("WFE_DIFFERENTIAL_EXAMPLES"),
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(
    scenario=scenarios(),
    verbs=st.lists(st.tuples(st.integers(0, 6), st.sampled_from(VERBS)), max_size=4),
    human=st.sampled_from(["", "", "s0_0", "s1_0"]),
    mode=st.sampled_from(["auto", "auto", "step"]),
)
def test_the_store_records_what_the_core_alone_predicts(
    database_url: str, scenario: Scenario, verbs: list[tuple[int, str]], human: str, mode: str
) -> None:
    """The same deliveries and operators' verbs, through the coordinator on a real store and
    through the decision core alone on dictionaries (:mod:`tests.support.model`): the same
    execution, the same runs and the same history, event for event. Some workflows have a
    human task, and some run in step mode."""
    name = f"core-{next(_NAMES)}"
    names = {step for layer in scenario.layers for step in layer}
    humans = frozenset({human} & names)
    human = next(iter(humans), "s0_0")
    harness = Harness(database_url, inline_steps=0)
    try:
        with plain_paths(harness):
            harness.agent("scripted", scripted(scenario))
            definition = harness.register(build(name, scenario, humans))
            record = harness.start(name, input_data={"flag": scenario.flag}, mode=mode)
            model = Model(definition, harness.settings, harness.clock.now())
            model.start({"flag": scenario.flag}, mode=mode)
            outcome = outcome_of(scenario)
            shuffles = (random.Random(scenario.order_seed), random.Random(scenario.order_seed))

            def deliver_real() -> bool:
                harness.broker.queue.sort(key=lambda _: shuffles[0].random())
                return harness.deliver_one()

            def deliver_model() -> bool:
                model.queue.sort(key=lambda _: shuffles[1].random())
                return model.deliver_one(outcome)

            real = drive(verbs, deliver_real, lambda v: verb_on_coordinator(harness, record.id, v, human))
            predicted = drive(verbs, deliver_model, lambda v: verb_on_model(model, v, human))
            stored = harness.store.get_execution(record.id)
            runs = harness.runs(record.id)
            events = harness.store.events(record.id)
    finally:
        harness.close()
    assert model.record is not None
    for (_, verb), refused in zip([*sorted(verbs), (0, "end")], real, strict=False):
        event(f"{verb}: {refused or 'applied'}")
    event(f"ended {stored.status}, mode {mode}{', with a human task' if humans else ''}")
    assert real == predicted
    assert execution_state(stored) == execution_state(model.record), (scenario, verbs)
    assert sorted(run_state(vars_of(run)) for run in runs) == sorted(
        run_state(row) for row in model.runs.values()
    )
    assert [event_state(vars_of(event)) for event in events] == [event_state(event) for event in model.events]


def vars_of(record: Any) -> dict[str, Any]:
    return {f.name: getattr(record, f.name) for f in dataclass_fields(record)}


def execution_state(record: Any) -> tuple[Any, ...]:
    return (
        record.status,
        record.active_steps,
        record.waiting_steps,
        record.resolved_steps,
        record.retries,
        record.output,
        record.barriers or None,
        (record.error or {}).get("message"),
    )


def run_state(row: dict[str, Any]) -> tuple[Any, ...]:
    keys = (
        "step_name",
        "attempt",
        "status",
        "superseded",
        "output",
        "error_type",
        "error_message",
        "not_before",
    )
    return tuple(canonical(row.get(key)) for key in keys)


def event_state(event: dict[str, Any]) -> tuple[Any, ...]:
    keys = ("step_name", "attempt", "from_status", "to_status", "actor", "reason", "details", "created_at")
    return tuple(canonical(event.get(key)) for key in keys)


def canonical(value: Any) -> str:
    """A value as both sides can compare it (JSON documents whatever the order of their keys)."""
    return json.dumps(value, sort_keys=True, default=str)
