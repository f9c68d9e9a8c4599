"""Opening the store of a database URL."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from workflow_engine.clock import Clock
from workflow_engine.errors import ConfigurationError, WorkflowEngineError
from workflow_engine.store import migrate
from workflow_engine.store.database import create_engine, is_sqlite
from workflow_engine.store.postgres_store import PostgresStore
from workflow_engine.store.repository import Store
from workflow_engine.store.seam import OutcomeStore

T = TypeVar("T")


def _implements_the_seam(sqlite: Store, postgres: PostgresStore) -> tuple[OutcomeStore, OutcomeStore]:
    """Both stores implement :class:`~workflow_engine.store.seam.OutcomeStore` (mypy checks
    this function; nothing calls it)."""
    return sqlite, postgres


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


def read_existing(database_url: str, read: Callable[[Store], T], connect_timeout: int) -> T | None:
    """``read(store)`` on the database at ``database_url`` as it is, never creating or upgrading
    it: None when it is an SQLite file not made yet. A server gets ``connect_timeout`` seconds to
    answer; a database that cannot be read raises :class:`StoreUnavailable`."""
    url = sa.make_url(database_url)
    if is_sqlite(url):
        if url.database and url.database != ":memory:" and not Path(url.database).exists():
            return None
    elif "connect_timeout" not in url.query:
        url = url.update_query_dict({"connect_timeout": str(connect_timeout)})
    try:
        store = store_for(url.render_as_string(hide_password=False))
        try:
            return read(store)
        finally:
            store.dispose()
    except (SQLAlchemyError, OSError) as exc:
        raise StoreUnavailable(" ".join(str(exc).split())) from None


class StoreUnavailable(WorkflowEngineError):
    """A database that could not be read."""
