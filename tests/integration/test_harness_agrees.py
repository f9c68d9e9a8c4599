"""The in-process harness (workflow_engine.testing) and a real deployment (a Celery worker and a
coordinator on Redis and PostgreSQL) agree: the same definitions, the same agents and the same
human answers end with the same statuses, the same steps' statuses and the same path."""

from __future__ import annotations

import importlib
import sys
from typing import Any

import pytest

from tests.integration.conftest import Cluster
from workflow_engine import agents as agents_module
from workflow_engine.agents import AgentRegistry
from workflow_engine.definitions import WorkflowBuilder, load
from workflow_engine.testing import Harness
from workflow_engine.testing.harness import taken_path

pytestmark = pytest.mark.slow

QUICK = {"max_attempts": 3, "initial_delay": 0.2, "max_delay": 0.5}

SAMPLE: list[tuple[dict[str, Any], dict[str, Any], dict[str, Any]]] = [
    # (definition, input, human answers)
    (
        {
            "name": "agree-route",
            "steps": [
                {"name": "grade", "agent": "score"},
                {"name": "high", "agent": "echo"},
                {"name": "low", "agent": "echo"},
                {"name": "after", "agent": "echo"},
            ],
            "edges": [
                {"from": "grade", "to": "high", "when": "steps.grade.score >= 50"},
                {"from": "grade", "to": "low", "when": "steps.grade.score < 50"},
                {"from": "high", "to": "after"},
                {"from": "low", "to": "after"},
            ],
        },
        {"score": 80},
        {},
    ),
    (
        WorkflowBuilder("agree-fan")
        .agent("start", "echo")
        .agent("b0", "echo", after="start")
        .agent("b1", "flaky", after="start", retry=QUICK)
        .agent("b2", "echo", after="start")
        .agent("join", "echo", after=["b0", "b1", "b2"])
        .document(),
        {},
        {},
    ),
    (
        {
            "name": "agree-fatal",
            "steps": [
                {"name": "a", "agent": "echo"},
                {"name": "optional", "agent": "fatal", "required": False},
                {"name": "broken", "agent": "fatal"},
                {"name": "never", "agent": "echo"},
            ],
        },
        {},
        {},
    ),
    (
        {
            "name": "agree-map",
            "steps": [
                {"name": "list", "agent": "lister"},
                {
                    "name": "each",
                    "type": "map",
                    "items": "steps.list.items",
                    "agent": "mapper",
                    "max_concurrency": 2,
                },
                {"name": "sub", "type": "workflow", "workflow": "agree-child"},
            ],
        },
        {"n": 5},
        {},
    ),
    (
        {
            "name": "agree-human",
            "steps": [
                {"name": "draft", "agent": "echo"},
                {"name": "approve", "type": "human"},
                {"name": "publish", "agent": "echo"},
                {"name": "rework", "agent": "echo"},
            ],
            "edges": [
                {"from": "draft", "to": "approve"},
                {"from": "approve", "to": "publish", "when": "steps.approve.ok"},
                {"from": "approve", "to": "rework", "when": "not steps.approve.ok"},
            ],
        },
        {},
        {"approve": {"ok": False}},
    ),
]
CHILD = {"name": "agree-child", "steps": [{"name": "x", "agent": "echo"}, {"name": "y", "agent": "echo"}]}


def outcome(view: Any, runs: Any) -> tuple[str, dict[str, str], list[str]]:
    return view.status, {s.name: str(s.status) for s in view.steps}, taken_path(view, runs)


@pytest.fixture
def workers_agents(monkeypatch: pytest.MonkeyPatch) -> AgentRegistry:
    """The agents the workers run (tests.support.agents), registered in a registry of the
    test's own: the process-wide one stays empty, as the other in-process tests expect."""
    registry = AgentRegistry()
    monkeypatch.setattr(agents_module, "REGISTRY", registry)
    module = sys.modules.get("tests.support.agents")
    if module is None:
        importlib.import_module("tests.support.agents")
    else:
        importlib.reload(module)
    return registry


def in_harness(
    registry: AgentRegistry, document: dict[str, Any], data: dict[str, Any], human: dict[str, Any]
) -> Any:
    with Harness() as harness:
        for name in registry.names():
            spec = registry.get(name)
            assert spec is not None
            harness.agent(name, spec.function)
        harness.register(CHILD)
        harness.register(document)
        run = harness.start(document["name"], input=data)
        harness.work()
        for step, answer in human.items():
            harness.complete(run.id, step, answer)
        return outcome(run.view, harness.store.step_runs(run.id))


def test_the_harness_and_a_real_deployment_agree(
    redis_cluster: Cluster, workers_agents: AgentRegistry
) -> None:
    engine = redis_cluster.engine
    engine.register(CHILD)
    for document, data, human in SAMPLE:
        definition = load(document)
        engine.register(definition)
        execution = engine.start(definition.name, data).id
        for step, answer in human.items():

            def waits(execution: str = execution, step: str = step) -> bool:
                return redis_cluster.statuses(execution).get(step) == "waiting"

            redis_cluster.wait_for(waits, what=f"{definition.name} to wait at {step}")
            engine.complete_human_task(execution, step, answer, user_id="editor")
        real = redis_cluster.wait(execution)
        expected = in_harness(workers_agents, document, data, human)
        assert outcome(real, engine.store.step_runs(execution)) == expected, definition.name
