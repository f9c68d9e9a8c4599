"""The product's harness (workflow_engine.testing), with the agents and shapes tests share."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from workflow_engine.agents import AgentContext
from workflow_engine.definitions import WorkflowBuilder
from workflow_engine.store.records import ExecutionRecord
from workflow_engine.testing import harness as product
from workflow_engine.testing.harness import Broker, InlineHeartbeat, Run, harness_settings

__all__ = ["Broker", "Harness", "InlineHeartbeat", "Run", "fails_first", "fan", "harness_settings"]


class Harness(product.Harness):
    """The product's harness, its ``start`` answering the execution's record as it started
    (what the engine's own tests compare later states with), and timers and backoffs beyond
    the ETA horizon of production (600 s) left to the reconciler, as there."""

    def __init__(self, url: str | None = None, **settings: Any) -> None:
        super().__init__(url, **{"eta_horizon": 600.0, **settings})

    def start(self, workflow: str, input: Any = None, **kwargs: Any) -> ExecutionRecord:  # type: ignore[override]
        if input is not None:
            kwargs["input_data"] = input
        return self.coordinator.start(workflow, **kwargs)


def fails_first(error: Exception, output: Any = None) -> Callable[[AgentContext], Any]:
    """An agent that raises ``error`` on its first attempt and returns ``output`` ({}) after."""

    def agent(ctx: AgentContext) -> Any:
        if ctx.attempt == 1:
            raise error
        return {} if output is None else output

    return agent


def fan(name: str = "fan", width: int = 3) -> WorkflowBuilder:
    """start → ``width`` branches b0, b1, ... → join."""
    builder = WorkflowBuilder(name).agent("start")
    branches = [f"b{i}" for i in range(width)]
    for branch in branches:
        builder.agent(branch, after="start")
    return builder.agent("join", after=branches)
