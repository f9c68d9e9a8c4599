"""The engine in one process, one message at a time, on a virtual clock.

The harness is the production coordinator and step executor (the same decisions, the same
store), with the broker and the worker played in process: it keeps what the coordinator
publishes, runs step messages through the real executor (claim, agent, finish), fires timers,
and moves a virtual clock to the next message's ETA instead of waiting for it, so a one-day
timer or a minute of backoff takes no time. Its store is a throwaway in-memory SQLite database
unless it is given a database URL.

    harness = Harness()
    harness.register("config/workflows/ib-review.yaml")
    harness.mock("scorer", {"score": 91})
    harness.mock("regdata", {"error": "transient", "times": 1, "output": {"records": 3}})
    run = harness.start("ib-review", input={"project_id": "p-1"})
    harness.work()
    assert run.status == "waiting"
    harness.complete(run.id, "approve", {"approved": True})
    assert run.status == "completed" and run.path[-1] == "publish"
"""

from __future__ import annotations

import inspect
import os
import random
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

from workflow_engine.agents import AgentContext, AgentRegistry
from workflow_engine.clock import FixedClock
from workflow_engine.coordinator.reconciler import Reconciler
from workflow_engine.coordinator.service import Coordinator
from workflow_engine.core.states import OPEN_STEP, TERMINAL_EXECUTION, StepStatus
from workflow_engine.decisions.dispatch import Dispatch
from workflow_engine.definitions import WorkflowBuilder, WorkflowDefinition, load
from workflow_engine.errors import WorkflowEngineError
from workflow_engine.settings import Settings
from workflow_engine.store import migrate
from workflow_engine.store.opening import store_for
from workflow_engine.store.records import ExecutionRecord, StepRunRecord
from workflow_engine.testing.mocks import mocked
from workflow_engine.views import ExecutionView, execution_view
from workflow_engine.worker.executor import StepExecutor

SHARED_MEMORY = "/dev/shm"  # noqa: S108 - a folder of its own is made in it, by mkdtemp
NOT_RUN = frozenset({StepStatus.PENDING, StepStatus.SKIPPED, StepStatus.CANCELLED})
_MIGRATING = threading.Lock()  # (Alembic's context is global: one migration at a time per process)


class Stopped(WorkflowEngineError):
    """The harness was given a deadline, and it has passed: nothing more is delivered."""


def taken_path(view: ExecutionView, runs: Sequence[StepRunRecord]) -> list[str]:
    """The steps an execution ran (succeeded, failed, running or waiting), in the order they
    were first opened (``runs`` as the store lists them: by the time each was queued): what a
    test compares, here or against a real deployment."""
    current = {step.name: step.status for step in view.steps}
    first = dict.fromkeys(run.step_name for run in runs)
    return [name for name in first if current.get(name) not in NOT_RUN]


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
    worker_id = "harness-worker:1"

    def __init__(self) -> None:
        self.running: list[int] = []

    @contextmanager
    def beating(self, run_id: int) -> Iterator[None]:
        self.running.append(run_id)
        try:
            yield
        finally:
            self.running.remove(run_id)


def harness_settings(url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": url,
        "broker_url": "memory://",
        "heartbeat_interval": 1.0,
        "worker_lost_after": 10.0,
        "redispatch_after": 30.0,
        "reconcile_interval": 1.0,
        "timeout_grace": 1.0,
        # every timer and backoff is published with its ETA at once: the clock jumps to it
        "eta_horizon": 400 * 24 * 3600.0,
        "max_worker_losses": 3,
    }
    values.update(overrides)
    return Settings(**values)


class MemoryDatabase:
    """A migrated SQLite database in memory (on the shared-memory file system where there is
    one, so that it behaves as the embedded database does), removed when closed."""

    def __init__(self) -> None:
        memory = SHARED_MEMORY if os.path.isdir(SHARED_MEMORY) and os.access(SHARED_MEMORY, os.W_OK) else None
        self.folder = tempfile.mkdtemp(prefix="wfe-harness-", dir=memory)  # (private: mode 0700)
        self.url = f"sqlite:///{self.folder}/harness.db"
        try:
            with _MIGRATING:
                migrate.upgrade(self.url)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


class Run:
    """A handle on one execution in a harness: each property reads it as it is now."""

    def __init__(self, harness: Harness, execution_id: str) -> None:
        self.harness = harness
        self.id = execution_id

    @property
    def view(self) -> ExecutionView:
        return self.harness.view(self.id)

    @property
    def status(self) -> str:
        return self.harness.store.get_execution(self.id).status

    @property
    def output(self) -> Any:
        return self.view.output

    @property
    def error(self) -> Any:
        return self.view.error

    @property
    def outputs(self) -> dict[str, Any]:
        """The output of each step that has one."""
        return {step.name: step.output for step in self.view.steps if step.output is not None}

    @property
    def steps(self) -> dict[str, str]:
        """Each step's status."""
        return self.harness.statuses(self.id)

    @property
    def path(self) -> list[str]:
        """The steps that ran (succeeded, failed, or are running or waiting), in the order they
        were first opened."""
        return self.harness.path(self.id)

    @property
    def record(self) -> ExecutionRecord:
        """The execution's stored record, as it is now."""
        return self.harness.record(self.id)

    def __repr__(self) -> str:
        return f"Run({self.id!r}, status={self.status!r})"


class Harness:
    """The engine in process (see the module's documentation). ``url``: the database to use
    (migrated already); None for a throwaway in-memory one. Once ``deadline`` (a
    ``time.monotonic()`` value) has passed, delivering a message raises :class:`Stopped` with
    ``stop_reason``."""

    deadline: float | None = None
    stop_reason = "the harness's deadline has passed"

    def __init__(self, url: str | None = None, **settings: Any) -> None:
        self.memory = MemoryDatabase() if url is None else None
        url = self.memory.url if self.memory is not None else url
        assert url is not None
        try:
            self._open(url, settings)
        except BaseException:
            if self.memory is not None:
                self.memory.close()
            raise

    def _open(self, url: str, settings: dict[str, Any]) -> None:
        self.clock = FixedClock()
        self.store = store_for(url, self.clock)
        self.settings = harness_settings(url, **settings)
        self.broker = Broker()
        self.agents = AgentRegistry()
        self.coordinator = Coordinator(self.store, self.broker, self.settings, rng=random.Random(1))
        self.heartbeat = InlineHeartbeat()
        self.executor = StepExecutor(self.coordinator, self.agents, self.heartbeat, self.store)  # type: ignore[arg-type]
        self.reconciler = Reconciler(self.coordinator, self.settings, self.clock)
        self.calls: list[tuple[str, int]] = []
        self.inline_steps = 0  # steps a "worker" runs in place after the one it was sent

    def close(self) -> None:
        try:
            self.store.dispose()
        finally:
            if self.memory is not None:
                self.memory.close()

    def __enter__(self) -> Harness:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # definitions and agents

    def agent(self, name: str, function: Callable[[AgentContext], Any] | None = None) -> None:
        """Run ``function`` as the agent ``name`` (default: one that returns ``{"step": name}``)."""

        def default(ctx: AgentContext) -> dict[str, Any]:
            return {"step": ctx.step_name}

        chosen: Callable[[AgentContext], Any] = function or default

        def recorded(ctx: AgentContext) -> Any:
            self.calls.append((ctx.step_name, ctx.attempt))
            return chosen(ctx)

        async def recorded_async(ctx: AgentContext) -> Any:
            self.calls.append((ctx.step_name, ctx.attempt))
            return await chosen(ctx)

        wrapper = recorded_async if inspect.iscoroutinefunction(chosen) else recorded
        self.agents.register(name, wrapper, replace=True)

    def mock(self, name: str, spec: Any) -> None:
        """Replace the agent ``name`` by a mock: an output, a function of the context, an error
        class or instance, or ``{"error": "transient|validation|fatal", "times"?, "output"?}``."""
        self.agent(name, mocked(spec))

    def register(
        self, source: WorkflowBuilder | WorkflowDefinition | dict[str, Any] | str | Path
    ) -> WorkflowDefinition:
        """Store a definition (a builder, a definition, a document or a file); its agents not
        given yet get the default agent."""
        if isinstance(source, WorkflowBuilder):
            definition = source.build()
        elif isinstance(source, WorkflowDefinition):
            definition = source
        else:
            definition = load(source)
        for agent in definition.agents:
            if agent not in self.agents:
                self.agent(agent)
        self.store.register_workflow(definition)
        return definition

    # running

    def start(self, workflow: str, input: Any = None, **kwargs: Any) -> Run:
        """Start an execution (nothing runs until :meth:`work` or :meth:`advance`)."""
        if input is not None:
            kwargs["input_data"] = input
        return Run(self, self.coordinator.start(workflow, **kwargs).id)

    def deliver_one(self) -> bool:
        """Deliver the next due message; advance the clock to the next ETA when none is due."""
        if not self.broker.queue:
            return False
        now = self.clock.now()
        due = [d for d in self.broker.queue if d.eta is None or d.eta <= now]
        if not due:
            self.clock.current = min(d.eta for d in self.broker.queue if d.eta is not None)
            return True
        self._deliver(due[0])
        return True

    def _deliver(self, item: Dispatch) -> None:
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise Stopped(self.stop_reason)
        self.broker.queue.remove(item)
        if item.kind == "timer":
            self.coordinator.fire_timer(item.run_id)
        else:
            self.executor.execute(item.run_id, item.task_id, self.inline_steps, rated=item.rated)

    def work(self, limit: int = 10_000) -> None:
        """Deliver messages, the clock jumping to each ETA, until none is left: every execution
        has ended or waits on the outside world (a human, a signal)."""
        for _ in range(limit):
            if not self.deliver_one():
                return
        raise AssertionError("messages kept coming")

    def advance(self, seconds: float, limit: int = 10_000) -> None:
        """Move the clock ``seconds`` on, delivering every message due by then, in order."""
        until = self.clock.now() + timedelta(seconds=seconds)
        for _ in range(limit):
            due = [d for d in self.broker.queue if d.eta is None or d.eta <= self.clock.now()]
            if due:
                self._deliver(due[0])
                continue
            later = [d.eta for d in self.broker.queue if d.eta is not None and d.eta <= until]
            if not later:
                self.clock.current = until
                return
            self.clock.current = min(later)
        raise AssertionError("messages kept coming")

    def complete(self, execution_id: str, step: str, data: Any, actor: str | None = None) -> None:
        """A person completes the human step ``step`` (by default its first assignee); what
        follows runs."""
        definition = self.coordinator.definitions.get(self.record(execution_id).workflow_id)
        assignees = definition.step(step).assignees if step in definition.steps_by_name else ()
        first = actor or (assignees[0] if assignees else "harness")
        role = first.removeprefix("role:") if first.startswith("role:") else None
        self.coordinator.complete_step(execution_id, step, data, first, role=role)
        self.work()

    def signal(self, execution_id: str, name: str, data: Any = None, actor: str = "harness") -> str | None:
        """Send the signal ``name``; what follows runs. The wait step that took it, if any."""
        taken = self.coordinator.signal(execution_id, name, data, actor)
        self.work()
        return taken

    def run(self, workflow: str, input: Any = None, **kwargs: Any) -> ExecutionView:
        """Start an execution and work until nothing is left; the execution as it ends."""
        started = Harness.start(self, workflow, input, **kwargs)
        self.work()
        return self.view(started.id)

    # looking

    def view(self, execution_id: str) -> ExecutionView:
        record = self.store.get_execution(execution_id)
        definition = self.coordinator.definitions.get(record.workflow_id)
        return execution_view(record, definition, self.store.step_runs(execution_id))

    def is_done(self, execution_id: str) -> bool:
        return self.store.get_execution(execution_id).status in TERMINAL_EXECUTION

    def statuses(self, execution_id: str) -> dict[str, str]:
        return {step.name: step.status for step in self.view(execution_id).steps}

    def path(self, execution_id: str) -> list[str]:
        return taken_path(self.view(execution_id), self.store.step_runs(execution_id))

    def waiting_steps(self, execution_id: str) -> list[str]:
        return [s.name for s in self.view(execution_id).steps if s.status == StepStatus.WAITING]

    def open_steps(self, execution_id: str) -> list[str]:
        return [s.name for s in self.view(execution_id).steps if s.status in OPEN_STEP]

    def runs(self, execution_id: str, step: str | None = None) -> list[StepRunRecord]:
        return [
            r for r in self.store.step_runs(execution_id, items=True) if step is None or r.step_name == step
        ]

    def history(self, execution_id: str) -> list[tuple[str | None, str | None, str]]:
        return [(e.step_name, e.from_status, e.to_status) for e in self.store.events(execution_id)]

    def execution_history(self, execution_id: str) -> list[str]:
        return [e.to_status for e in self.store.events(execution_id) if e.step_name is None]

    def record(self, execution_id: str) -> ExecutionRecord:
        return self.store.get_execution(execution_id)
