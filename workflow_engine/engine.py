"""The Python API: one object that registers workflows and runs and controls executions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from workflow_engine.clock import Clock
from workflow_engine.definitions.loader import load
from workflow_engine.definitions.model import WorkflowDefinition
from workflow_engine.errors import ConfigurationError
from workflow_engine.settings import Settings
from workflow_engine.store import migrate
from workflow_engine.store.database import is_sqlite
from workflow_engine.store.records import WorkflowRecord
from workflow_engine.store.repository import Store


def open_store(settings: Settings, clock: Clock | None = None, pool_size: int = 5) -> Store:
    """The store for ``settings``; the embedded SQLite database is migrated on first use."""
    if not migrate.is_current(settings.database_url):
        if not is_sqlite(settings.database_url):
            raise ConfigurationError(
                "the database schema is not up to date: run `wfe db upgrade` first"
            )
        migrate.upgrade(settings.database_url)
    return Store.from_url(settings.database_url, clock=clock, pool_size=pool_size)


class Engine:
    """Register workflows; start, inspect and control executions."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store

    @classmethod
    def from_settings(cls, settings: Settings | None = None, clock: Clock | None = None) -> Engine:
        """An engine configured from ``WFE_*`` settings (or the given ones)."""
        settings = settings or Settings()
        return cls(settings, open_store(settings, clock))

    def close(self) -> None:
        self.store.dispose()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()

    def register(
        self, source: WorkflowDefinition | dict[str, Any] | str | Path, created_by: int | None = None
    ) -> WorkflowRecord:
        """Validate and store a definition version; the same body twice is a no-op."""
        record, _ = self.store.register_workflow(load(source), created_by)
        return record

    def workflows(self, visible_to: int | None = None) -> list[WorkflowRecord]:
        return self.store.list_workflows(visible_to)
