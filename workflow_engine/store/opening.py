"""Opening the store of a database URL."""

from __future__ import annotations

import logging

from workflow_engine.clock import Clock
from workflow_engine.errors import ConfigurationError
from workflow_engine.store import migrate
from workflow_engine.store.database import create_engine, is_sqlite
from workflow_engine.store.postgres_store import PostgresStore
from workflow_engine.store.repository import Store

log = logging.getLogger(__name__)


def open_store(database_url: str, clock: Clock | None = None, pool_size: int = 5) -> Store:
    """The store of ``database_url``; the embedded SQLite database is migrated on first use, any
    other must have been brought up to date with `wfe db upgrade`."""
    if not migrate.is_current(database_url):
        if not is_sqlite(database_url):
            raise ConfigurationError("the database schema is not up to date: run `wfe db upgrade` first")
        for text in migrate.upgrade(database_url):
            log.warning("%s", text)
    return store_for(database_url, clock=clock, pool_size=pool_size)


def store_for(database_url: str, clock: Clock | None = None, pool_size: int = 5) -> Store:
    """The store of ``database_url`` as it is: SQLite's or PostgreSQL's."""
    engine = create_engine(database_url, pool_size=pool_size)
    if engine.dialect.name == "postgresql":
        return PostgresStore(engine, clock)
    return Store(engine, clock)
