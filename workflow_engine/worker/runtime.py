"""What one worker process holds: store, coordinator, agents, heartbeat and executor."""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from workflow_engine.agents import REGISTRY, AgentCatalogue, load_modules
from workflow_engine.celery_tasks import load_tasks
from workflow_engine.coordinator.service import Coordinator
from workflow_engine.decisions.dispatch import task_id
from workflow_engine.outages import warn
from workflow_engine.store.opening import open_store
from workflow_engine.worker.app import EngineCelery
from workflow_engine.worker.dispatcher import CeleryDispatcher
from workflow_engine.worker.executor import StepExecutor
from workflow_engine.worker.heartbeat import Heartbeat
from workflow_engine.worker.reports import Attempted

log = logging.getLogger(__name__)
_making = threading.Lock()


def runtime_of(app: EngineCelery) -> Runtime:
    """The runtime of this process for ``app``, made on first use (after a fork, made again)."""
    pid = os.getpid()
    if app.runtime is None or app.runtime[0] != pid:
        with _making:
            if app.runtime is None or app.runtime[0] != pid:
                app.runtime = (pid, Runtime(app))
    made: Runtime = app.runtime[1]
    return made


def begin(app: EngineCelery) -> None:
    """A new pool process makes its runtime and starts beating at once, so that its node shows
    it before it runs a step; in the background, as the pool gives a new process only a few
    seconds to start."""

    def make() -> None:
        try:
            runtime_of(app).heartbeat.start()
        except Exception as exc:  # (its first step makes the runtime again)
            warn(log, exc, "a pool process could not start its heartbeat")

    threading.Thread(target=make, name="wfe-runtime", daemon=True).start()


def leave(app: EngineCelery) -> None:
    """This process stops cleanly: its heartbeat record goes, if it made a runtime."""
    made = app.runtime
    if made is not None and made[0] == os.getpid():
        made[1].heartbeat.leave()


class Runtime:
    def __init__(self, app: EngineCelery) -> None:
        settings = app.settings
        load_modules(settings.agent_modules)
        load_tasks(settings.task_modules)
        self.store = open_store(settings.database_url, pool_size=2)
        self.dispatcher = CeleryDispatcher(app)
        self.coordinator = Coordinator(
            self.store, self.dispatcher, settings, agent_catalog=AgentCatalogue(self.store, REGISTRY)
        )
        queues = [settings.steps_queue]
        agents = sorted(REGISTRY.names())
        self.heartbeat = Heartbeat(
            self.store, agents, queues, settings.heartbeat_interval, app.process_slots, app.node_name
        )
        self.executor = StepExecutor(self.coordinator, REGISTRY, self.heartbeat, self.store, self._announce)
        self.app = app
        self._events: Any = None

    def _announce(self, attempted: Attempted) -> None:
        """Task events for a step run in place, so Flower lists it like any step task, in the
        state of its outcome (see :mod:`workflow_engine.worker.reports`).

        Sent while the worker sends task events, as Celery decides for the task that carried
        the step: turned on by Flower at run time as well as by ``WFE_TASK_EVENTS``.
        """
        if not self.app.live_task_events.enabled:
            return
        from celery import current_task

        carrier = current_task.request if current_task else None
        claim, outcome = attempted.claim, attempted.outcome
        uuid = task_id(claim.execution_id, claim.step.name, claim.attempt)
        try:
            dispatcher = self._event_dispatcher(getattr(carrier, "hostname", None))
            dispatcher.send(
                "task-received",
                uuid=uuid,
                name=claim.step.task or f"{claim.workflow}.{claim.step.name}",
                args=repr((claim.run_id, claim.execution_id, claim.step.name, claim.attempt)),
                kwargs=repr({"workflow": claim.workflow}),
                retries=claim.attempt - 1,
                parent_id=getattr(carrier, "id", None),
                root_id=getattr(carrier, "root_id", None),
            )
            if attempted.state == "SUCCESS":
                dispatcher.send(
                    "task-succeeded",
                    uuid=uuid,
                    result=repr(attempted.summary),
                    runtime=outcome.duration_ms / 1000,
                )
            else:
                kind = "task-retried" if attempted.state == "RETRY" else "task-failed"
                dispatcher.send(
                    kind, uuid=uuid, exception=repr(attempted.failure), traceback=attempted.traceback
                )
        except Exception:
            log.debug("could not announce %s", uuid, exc_info=True)
            self._events = None

    def _event_dispatcher(self, hostname: str | None) -> Any:
        """One event dispatcher (and connection) for this process, made on first use."""
        if self._events is None:
            connection = self.app.connection_for_write()
            self._events = self.app.events.Dispatcher(connection, hostname=hostname, enabled=True)
        return self._events
