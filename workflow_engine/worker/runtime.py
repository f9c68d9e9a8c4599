"""What one worker process holds: store, coordinator, agents, heartbeat and executor."""

from __future__ import annotations

from workflow_engine.agents import REGISTRY, load_modules
from workflow_engine.coordinator.service import Coordinator
from workflow_engine.engine import AgentCatalogue, open_store
from workflow_engine.worker.app import EngineCelery
from workflow_engine.worker.dispatcher import CeleryDispatcher
from workflow_engine.worker.executor import StepExecutor
from workflow_engine.worker.heartbeat import Heartbeat


class Runtime:
    def __init__(self, app: EngineCelery) -> None:
        settings = app.settings
        load_modules(settings.agent_modules)
        self.store = open_store(settings, pool_size=2)
        self.dispatcher = CeleryDispatcher(app)
        self.coordinator = Coordinator(
            self.store, self.dispatcher, settings, agent_catalog=AgentCatalogue(self.store, REGISTRY)
        )
        queues = [settings.steps_queue]
        self.heartbeat = Heartbeat(self.store, sorted(REGISTRY.names()), queues, settings.heartbeat_interval)
        self.executor = StepExecutor(self.coordinator, REGISTRY, self.heartbeat, self.store)
