"""Drive the coordinator in-process against a real database, one message at a time.

The harness plays broker and worker deterministically: it keeps what the coordinator
publishes, runs step messages through the real executor (claim, agent, finish) with test
agents, fires timers, and moves a fixed clock forward to reach ETAs. Nothing here replaces the
integration tests, which run real worker processes on a real broker.
"""

from __future__ import annotations

import inspect
import random
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from workflow_engine.agents import AgentContext, AgentRegistry
from workflow_engine.clock import FixedClock
from workflow_engine.coordinator.dispatch import Dispatch
from workflow_engine.coordinator.reconciler import Reconciler
from workflow_engine.coordinator.service import Coordinator
from workflow_engine.definitions import WorkflowBuilder, WorkflowDefinition, load
from workflow_engine.settings import Settings
from workflow_engine.store.opening import store_for
from workflow_engine.store.records import ExecutionRecord, StepRunRecord
from workflow_engine.views import ExecutionView, execution_view
from workflow_engine.worker.executor import StepExecutor


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


class Broker:
    """Keeps published messages until the harness delivers them."""

    def __init__(self) -> None:
        self.queue: list[Dispatch] = []
        self.published: list[Dispatch] = []
        self.revoked: list[tuple[str, bool]] = []
        self.down = False

    def dispatch(self, items: Sequence[Dispatch]) -> None:
        if self.down:
            raise ConnectionError("broker unreachable")
        self.queue.extend(items)
        self.published.extend(items)

    def revoke(self, task_ids: Sequence[str], terminate: bool) -> None:
        self.revoked.extend((task, terminate) for task in task_ids)


class InlineHeartbeat:
    worker_id = "test-worker:1"

    def __init__(self) -> None:
        self.running: list[int] = []

    @contextmanager
    def beating(self, run_id: int) -> Iterator[None]:
        self.running.append(run_id)
        try:
            yield
        finally:
            self.running.remove(run_id)


def test_settings(url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": url,
        "broker_url": "memory://",
        "heartbeat_interval": 1.0,
        "worker_lost_after": 10.0,
        "redispatch_after": 30.0,
        "reconcile_interval": 1.0,
        "timeout_grace": 1.0,
        "eta_horizon": 600.0,
        "max_worker_losses": 3,
    }
    values.update(overrides)
    return Settings(**values)


class Harness:
    def __init__(self, url: str, **settings: Any) -> None:
        self.clock = FixedClock()
        self.store = store_for(url, self.clock)
        self.settings = test_settings(url, **settings)
        self.broker = Broker()
        self.agents = AgentRegistry()
        self.coordinator = Coordinator(self.store, self.broker, self.settings, rng=random.Random(1))
        self.heartbeat = InlineHeartbeat()
        self.executor = StepExecutor(self.coordinator, self.agents, self.heartbeat, self.store)  # type: ignore[arg-type]
        self.reconciler = Reconciler(self.coordinator, self.settings, self.clock)
        self.calls: list[tuple[str, int]] = []
        self.inline_steps = 0  # steps a "worker" runs in place after the one it was sent

    def close(self) -> None:
        self.store.dispose()

    # definitions and agents

    def agent(self, name: str, function: Callable[[AgentContext], Any] | None = None) -> None:
        def default(ctx: AgentContext) -> dict[str, Any]:
            return {"step": ctx.step_name}

        chosen = function or default

        def recorded(ctx: AgentContext) -> Any:
            self.calls.append((ctx.step_name, ctx.attempt))
            return chosen(ctx)

        async def recorded_async(ctx: AgentContext) -> Any:
            self.calls.append((ctx.step_name, ctx.attempt))
            return await chosen(ctx)

        wrapper = recorded_async if inspect.iscoroutinefunction(chosen) else recorded
        self.agents.register(name, wrapper, replace=True)

    def register(self, source: WorkflowBuilder | dict[str, Any] | str) -> WorkflowDefinition:
        definition = source.build() if isinstance(source, WorkflowBuilder) else load(source)
        for agent in definition.agents:
            if agent not in self.agents:
                self.agent(agent)
        self.store.register_workflow(definition)
        return definition

    # running

    def start(self, workflow: str, **kwargs: Any) -> ExecutionRecord:
        return self.coordinator.start(workflow, **kwargs)

    def deliver_one(self) -> bool:
        """Deliver the next due message; advance the clock to the next ETA when none is due."""
        if not self.broker.queue:
            return False
        now = self.clock.now()
        due = [d for d in self.broker.queue if d.eta is None or d.eta <= now]
        if not due:
            self.clock.current = min(d.eta for d in self.broker.queue if d.eta is not None)
            return True
        item = due[0]
        self.broker.queue.remove(item)
        if item.kind == "timer":
            self.coordinator.fire_timer(item.run_id)
        else:
            self.executor.execute(item.run_id, item.task_id, self.inline_steps, rated=item.rated)
        return True

    def work(self, limit: int = 10_000) -> None:
        """Deliver messages until there are none left."""
        for _ in range(limit):
            if not self.deliver_one():
                return
        raise AssertionError("messages kept coming")

    def run(self, workflow: str, **kwargs: Any) -> ExecutionView:
        record = self.start(workflow, **kwargs)
        self.work()
        return self.view(record.id)

    # looking

    def view(self, execution_id: str) -> ExecutionView:
        record = self.store.get_execution(execution_id)
        definition = self.coordinator.definitions.get(record.workflow_id)
        return execution_view(record, definition, self.store.step_runs(execution_id))

    def statuses(self, execution_id: str) -> dict[str, str]:
        return {step.name: step.status for step in self.view(execution_id).steps}

    def runs(self, execution_id: str, step: str | None = None) -> list[StepRunRecord]:
        return [
            r for r in self.store.step_runs(execution_id, items=True) if step is None or r.step_name == step
        ]

    def history(self, execution_id: str) -> list[tuple[str | None, str | None, str]]:
        return [(e.step_name, e.from_status, e.to_status) for e in self.store.events(execution_id)]

    def execution_history(self, execution_id: str) -> list[str]:
        return [e.to_status for e in self.store.events(execution_id) if e.step_name is None]
