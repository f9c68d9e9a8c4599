"""The Python API: one object that registers workflows and runs and controls executions.

    from workflow_engine import Engine
    engine = Engine.from_settings()
    engine.register("config/workflows/ib-review.yaml")
    ex = engine.start("ib-review", input_data={"project_id": "p1"})
    engine.wait(ex.id, timeout=60)

The CLI and the REST API call these same methods.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from workflow_engine.agents import REGISTRY, AgentCatalogue, AgentRegistry
from workflow_engine.audit import Audit
from workflow_engine.bulk import Bulk
from workflow_engine.clock import Clock
from workflow_engine.coordinator.scheduler import Scheduler
from workflow_engine.coordinator.service import Coordinator
from workflow_engine.core.states import SETTLED_EXECUTION, TERMINAL_EXECUTION
from workflow_engine.decisions.dispatch import Dispatcher
from workflow_engine.definitions import compatibility
from workflow_engine.definitions.loader import Source, load
from workflow_engine.definitions.model import WorkflowDefinition, parse_version
from workflow_engine.definitions.validation import unknown_children
from workflow_engine.error_groups import ErrorGroups
from workflow_engine.errors import DefinitionError, InvalidOperation, TestRunNotFound, WorkflowNotFound
from workflow_engine.events import EventBus
from workflow_engine.monitoring import open_tasks
from workflow_engine.notify import EventFeed, Notifier, follow
from workflow_engine.reasons import Workers, live_queues
from workflow_engine.schedules import Schedules
from workflow_engine.settings import Settings
from workflow_engine.store import listing, test_runs
from workflow_engine.store.listing import ExecutionQuery
from workflow_engine.store.opening import open_store
from workflow_engine.store.records import EventRecord, WorkflowRecord
from workflow_engine.store.repository import LogQuery, Store
from workflow_engine.store.test_runs import TestRunRecord
from workflow_engine.views import ExecutionView, TaskView, execution_view, run_json, task_view
from workflow_engine.worker.dispatcher import LazyCeleryDispatcher

MAX_CHILDREN_SHOWN = 1000  # children listed with an execution (all: wfe list --parent)

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)

CATALOGUE_WINDOW = timedelta(hours=1)
CATALOGUE_TTL = 30.0


class Engine:
    """Register workflows; start, inspect and control executions."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        dispatcher: Dispatcher | None = None,
        events: EventBus | None = None,
        registry: AgentRegistry = REGISTRY,
    ) -> None:
        self.settings = settings
        self.store = store
        self.registry = registry
        self.events = events or EventBus()
        self.dispatcher = dispatcher or LazyCeleryDispatcher(settings)
        self.coordinator = Coordinator(
            store, self.dispatcher, settings, self.events, agent_catalog=AgentCatalogue(store, registry)
        )
        self.notifier = Notifier(store)
        self._feeds: list[EventFeed] = []
        # schedules: engine.schedules.create(...), .list(), .get(name), .pause(name), ...
        self.schedules = Schedules(Scheduler(self.coordinator, settings))
        # bulk actions by filter: engine.bulk.apply("cancel", ExecutionQuery(...), ...)
        self.bulk = Bulk(self.coordinator)
        # error groups: engine.errors.list(since), .get(group), .retry(group)
        self.errors = ErrorGroups(self.coordinator)
        self.audit = Audit(store)  # refused requests, spent refresh tokens

    @classmethod
    def from_settings(cls, settings: Settings | None = None, clock: Clock | None = None) -> Engine:
        """An engine configured from ``WFE_*`` settings (or the given ones)."""
        settings = settings or Settings()
        return cls(settings, open_store(settings.database_url, clock))

    def close(self) -> None:
        for feed in self._feeds:
            feed.stop()
        self.notifier.stop()
        self.store.dispose()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()

    # workflows

    def register(
        self,
        source: Source,
        created_by: int | None = None,
        visible_to: int | None = None,
        require_compatible: bool = False,
    ) -> WorkflowRecord:
        """Validate and store a definition version; the same body twice is a no-op. The child
        workflows its steps start must be registered (and visible to ``visible_to``, if given).
        With ``require_compatible``, a breaking change against the latest version is refused."""
        definition = load(source)
        if require_compatible:
            _, changes = self.changes(definition, visible_to)
            refused = compatibility.breaking(changes)
            if refused:
                lines = "; ".join(change.line() for change in refused)
                raise InvalidOperation(
                    f"{definition.name} {definition.version} breaks compatibility: {lines}"
                )

        def registered(name: str, version: str | None) -> bool:
            try:
                self.store.get_workflow(name, version, visible_to=visible_to)
            except WorkflowNotFound:
                return False
            return True

        problems = unknown_children(definition, registered)
        if problems:
            raise DefinitionError(problems, definition.name)
        record, _ = self.store.register_workflow(definition, created_by)
        return record

    def changes(
        self, source: Source, visible_to: int | None = None
    ) -> tuple[WorkflowRecord | None, list[compatibility.Change]]:
        """What ``source`` changes against the latest other version of its workflow (None and
        no changes when it is the first)."""
        definition = source if isinstance(source, WorkflowDefinition) else load(source)
        others = [
            r
            for r in self.store.list_workflows(visible_to, definition.name)
            if r.version != definition.version
        ]
        if not others:
            return None, []
        latest = max(others, key=lambda r: parse_version(r.version))
        return latest, compatibility.compare(self.coordinator.definitions.get(latest.id), definition)

    def run_cases(
        self,
        workflow: str,
        version: str | None = None,
        owner_id: int | None = None,
        visible_to: int | None = None,
    ) -> TestRunRecord:
        """Run a registered version's cases (``tests:``) in process, and keep the result."""
        from workflow_engine.testing.registered import run_registered  # (the worker's modules: on demand)

        owner = owner_id if owner_id is not None else self.store.system_user_id()
        return run_registered(self.store, workflow, version, owner, visible_to, self.registry, self.settings)

    def cases_run(self, run_id: int, owner_id: int | None = None) -> TestRunRecord:
        with self.store.transaction() as tx:
            found = test_runs.get(tx, run_id, owner_id)
        if found is None:
            raise TestRunNotFound(str(run_id))
        return found

    def workflows(self, visible_to: int | None = None, name: str | None = None) -> list[WorkflowRecord]:
        return self.store.list_workflows(visible_to, name)

    def workflow(
        self, name: str, version: str | None = None, visible_to: int | None = None
    ) -> WorkflowRecord:
        return self.store.get_workflow(name, version, visible_to)

    # executions

    def start(
        self,
        workflow: str,
        input_data: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        version: str | None = None,
        idempotency_key: str | None = None,
        mode: str = "auto",
        owner_id: int | None = None,
        actor: str = "api",
        visible_to: int | None = None,
    ) -> ExecutionView:
        """Start an execution of ``workflow`` (its latest version unless ``version``)."""
        record = self.coordinator.start(
            workflow,
            input_data=input_data,
            metadata=metadata,
            version=version,
            idempotency_key=idempotency_key,
            mode=mode,
            owner_id=owner_id,
            actor=actor,
            visible_to=visible_to,
        )
        return execution_view(record)

    def get(
        self, execution_id: str, owner_id: int | None = None, include_steps: bool = True
    ) -> ExecutionView:
        """Status, steps, percent complete, output and error of an execution."""
        record = self.store.get_execution(execution_id, owner_id)
        if not include_steps:
            return execution_view(record)
        definition = self.coordinator.definitions.get(record.workflow_id)
        children = self.store.children(execution_id, limit=MAX_CHILDREN_SHOWN) if definition.children else []
        runs = self.store.step_runs(execution_id)
        return execution_view(record, definition, runs, children, self.workers())

    def workers(self) -> Workers:
        """What the workers' heartbeats say now: the queues a live worker consumes (the
        reasons an execution gives for not running are made from it)."""
        now = self.store.clock.now()
        stale_after = 3 * self.settings.heartbeat_interval
        return Workers(live_queues(self.store.workers(), now, stale_after), self.settings.steps_queue, now)

    def resolve(self, execution_id: str, owner_id: int | None = None) -> str:
        """The whole id of the one execution ``execution_id`` is the id or a unique prefix of
        (at least :data:`~workflow_engine.store.repository.MIN_ID_PREFIX` characters) among
        those ``owner_id`` may see."""
        return self.store.resolve_execution_id(execution_id, owner_id)

    def short_id(self, execution_id: str, owner_id: int | None = None) -> str:
        """The shortest prefix of ``execution_id`` (8 characters or more) that :meth:`resolve`
        takes back to it."""
        return self.store.shortest_prefix(execution_id, owner_id)

    def executions(self, query: ExecutionQuery | None = None) -> tuple[list[ExecutionView], int]:
        """A page of executions, newest first, and how many match in all."""
        with self.store.reading() as conn:
            records, total = listing.page(conn, query or ExecutionQuery())
        return [execution_view(r) for r in records], total

    def wait(
        self,
        execution_id: str,
        timeout: float | None = 60.0,
        owner_id: int | None = None,
        stopped: Callable[[], bool] = lambda: False,
    ) -> ExecutionView:
        """Block until the execution is terminal or waiting (or until ``stopped()``: then it is
        as it is); TimeoutError after ``timeout``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = 0.02
        while True:
            record = self.store.get_execution(execution_id, owner_id)
            if record.status in SETTLED_EXECUTION or stopped():
                return self.get(execution_id, owner_id)
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"execution {execution_id} is still {record.status} after {timeout}s")
            time.sleep(pause)
            pause = min(pause * 1.5, 0.5)

    def logs(
        self,
        execution_id: str,
        step_name: str | None = None,
        step_type: str | None = None,
        has_error: bool | None = None,
        limit: int = 100,
        owner_id: int | None = None,
        index: int | None = None,
    ) -> list[dict[str, Any]]:
        """Every attempt, chronologically, with input, output, error, worker and duration (of
        a map step's item ``index`` only, if given)."""
        record = self.store.get_execution(execution_id, owner_id)
        runs = self.store.logs(execution_id, LogQuery(step_name, step_type, has_error, limit, index))
        return [run_json(run, record.input) for run in runs]

    def human_tasks(self, owner_id: int | None = None, limit: int = 100) -> list[TaskView]:
        """Steps waiting for a person (human tasks, and steps waiting for a fix), oldest first:
        of ``owner_id``'s executions, and the human tasks of others' assigned to that user (by
        name, or ``role:<role>``)."""
        assigned = self._assigned_to(owner_id) if owner_id is not None else None
        return [
            task_view(run, execution, self.coordinator.definitions.get(execution.workflow_id))
            for run, execution in open_tasks(self.store, owner_id, limit, assigned)
        ]

    def _assigned_to(self, user_id: int) -> Callable[[int, str], bool]:
        """Whether a workflow's step names this user, or their role, among its assignees."""
        user = self.store.get_user_by_id(user_id)
        names = {user.username, f"role:{user.role}"}

        def named(workflow_id: int, step: str) -> bool:
            steps = self.coordinator.definitions.get(workflow_id).steps_by_name
            return step in steps and bool(names & set(steps[step].assignees))

        return named

    def history(self, execution_id: str, after_id: int = 0, owner_id: int | None = None) -> list[EventRecord]:
        """The state transitions of an execution and its steps, oldest first."""
        self.store.get_execution(execution_id, owner_id)
        return self.store.events(execution_id, after_id)

    def subscribe(
        self, callback: Callable[[dict[str, Any]], None], execution_id: str | None = None
    ) -> Callable[[], None]:
        """Call ``callback`` with every event that commits from now on, written by any process
        (workers, coordinators, the API), of every execution or of ``execution_id``; returns a
        function that unsubscribes. ``engine.events`` instead has only this process's events."""

        def deliver(event: EventRecord) -> None:
            if execution_id is None or event.execution_id == execution_id:
                callback(asdict(event))

        feed = EventFeed(self.store, self.notifier, deliver, poll_interval=self.settings.events_poll_interval)
        self._feeds.append(feed.start())

        def unsubscribe() -> None:
            feed.stop()
            if feed in self._feeds:
                self._feeds.remove(feed)

        return unsubscribe

    def follow(
        self,
        execution_id: str,
        after_id: int = 0,
        owner_id: int | None = None,
        settled: bool = False,
        stopped: Callable[[], bool] = lambda: False,
    ) -> Iterator[EventRecord]:
        """The execution's events as they happen (history first), until it is terminal, or
        until it is terminal or waiting when ``settled``."""
        self.store.get_execution(execution_id, owner_id)
        statuses = SETTLED_EXECUTION if settled else TERMINAL_EXECUTION
        return follow(
            self.store,
            self.notifier,
            execution_id,
            after_id,
            self.settings.events_poll_interval,
            until_settled=lambda status: status in statuses,
            stopped=stopped,
        )

    # control

    def pause(self, execution_id: str, actor: str = "api", owner_id: int | None = None) -> ExecutionView:
        self.coordinator.pause(execution_id, actor, owner_id)
        return self.get(execution_id, owner_id)

    def resume(self, execution_id: str, actor: str = "api", owner_id: int | None = None) -> ExecutionView:
        self.coordinator.resume(execution_id, actor, owner_id)
        return self.get(execution_id, owner_id)

    def cancel(
        self, execution_id: str, reason: str | None = None, actor: str = "api", owner_id: int | None = None
    ) -> ExecutionView:
        self.coordinator.cancel(execution_id, actor, owner_id, reason)
        return self.get(execution_id, owner_id)

    def retry(
        self, execution_id: str, from_step: str | None = None, actor: str = "api", owner_id: int | None = None
    ) -> ExecutionView:
        self.coordinator.retry(execution_id, actor, owner_id, from_step)
        return self.get(execution_id, owner_id)

    def migrate(
        self, execution_id: str, version: str, actor: str = "api", owner_id: int | None = None
    ) -> ExecutionView:
        """Move a running, paused, waiting or failed execution to another version of its
        workflow; refused, changing nothing, unless every step it has run is there, same type."""
        self.coordinator.migrate(execution_id, version, actor, owner_id)
        return self.get(execution_id, owner_id)

    def next_step(self, execution_id: str, actor: str = "api", owner_id: int | None = None) -> ExecutionView:
        self.coordinator.next_step(execution_id, actor, owner_id)
        return self.get(execution_id, owner_id)

    def complete_human_task(
        self,
        execution_id: str,
        step: str,
        data: dict[str, Any],
        user_id: str | None = None,
        role: str | None = None,
        owner_id: int | None = None,
    ) -> ExecutionView:
        """Complete a waiting human step (or a step awaiting a fix) with ``data`` as its output.
        A human task of another user's execution assigned to the caller is theirs to complete;
        the answer then shows that step only (the rest of the execution stays its owner's)."""
        if owner_id is not None:
            record = self.store.get_execution(execution_id)
            if record.owner_id != owner_id and self._assigned_to(owner_id)(record.workflow_id, step):
                self.coordinator.complete_step(execution_id, step, data, user_id or "api", None, role)
                view = self.get(execution_id)
                shown = [s for s in view.steps if s.name == step]
                return replace(
                    view, input_data={}, metadata={}, output=None, error=None, steps=shown, children=[]
                )
        self.coordinator.complete_step(execution_id, step, data, user_id or "api", owner_id, role)
        return self.get(execution_id, owner_id)

    def signal(
        self,
        execution_id: str,
        name: str,
        data: dict[str, Any] | None = None,
        user_id: str | None = None,
        owner_id: int | None = None,
    ) -> ExecutionView:
        """Send the signal ``name`` with ``data``: the wait step waiting for it takes it, or it is
        kept for the next one reached. Refused when the execution has ended or no step of its
        workflow waits for ``name``, or when ``data`` breaks the step's ``input_schema``."""
        self.coordinator.signal(execution_id, name, {} if data is None else data, user_id or "api", owner_id)
        return self.get(execution_id, owner_id)
