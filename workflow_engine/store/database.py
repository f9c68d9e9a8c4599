"""Connections: one SQLAlchemy engine per process, SQLite made safe for several processes.

SQLite runs in WAL mode with a busy timeout, and write transactions start with
``BEGIN IMMEDIATE`` so that two processes never deadlock upgrading a read lock. Database errors
are translated here, at the boundary, into :class:`~workflow_engine.errors.StoreError`.

PostgreSQL is reached through psycopg 3 or psycopg2 (see :mod:`~workflow_engine.store.urls`),
and both bind parameters the same way, on the client: the hot path sends its transaction
control with its statement (``BEGIN; EXECUTE ...``) in one round trip, a query of several
statements that server-side binding refuses, and runs prepared statements by ``EXECUTE``,
whose parameters the server cannot bind at all. psycopg 3's cursor is set to answer with the
last statement's result, as psycopg2 does.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol, TypeVar

import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.engine import Connection, Engine

from workflow_engine.errors import StoreError
from workflow_engine.store.postgres import last_result_cursor
from workflow_engine.store.urls import PSYCOPG, database_url

T = TypeVar("T")

SQLITE_BUSY_TIMEOUT_MS = 30_000
_READ_ONLY = "wfe_read_only"

# PostgreSQL SQLSTATE classes worth retrying: connection exceptions, transaction rollbacks
# (serialization failures, deadlocks), insufficient resources, operator intervention.
_TRANSIENT_SQLSTATE_CLASSES = ("08", "40", "53", "57")
# admin shutdown, crash shutdown, cannot connect now: the server is going away or coming back
_SHUTTING_DOWN = ("57P01", "57P02", "57P03")


def is_sqlite(url: str | sa.URL) -> bool:
    return database_url(url).get_backend_name() == "sqlite"


def create_engine(url: str | sa.URL, pool_size: int = 5, isolation_level: str | None = None) -> Engine:
    """An engine for ``url`` (any form :func:`~workflow_engine.store.urls.database_url`
    accepts); for SQLite, the file's folder is created if missing."""
    parsed = database_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            folder = os.path.dirname(os.path.abspath(database))
            os.makedirs(folder, exist_ok=True)
        engine = sa.create_engine(
            parsed,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        )
        _make_sqlite_safe(engine)
        return engine
    # no pre-ping: it costs a round trip per transaction; a dropped connection fails the
    # transaction with a transient error instead, and callers retry (see `retrying`)
    options: dict[str, Any] = {"isolation_level": isolation_level} if isolation_level else {}
    engine = sa.create_engine(
        parsed,
        connect_args=_connect_args(parsed),
        pool_size=pool_size,
        max_overflow=pool_size * 2,
        pool_recycle=1800,
        **options,
    )
    _make_sessions_utc(engine)
    return engine


def create_fast_engine(url: sa.URL, pool_size: int = 2) -> Engine:
    """PostgreSQL sessions that autocommit and do not wait for the disk on commit: only for
    writes that may be lost in a server crash without harm (see store.claims)."""
    parsed = database_url(url)
    # the URL's own options (a search_path, say) apply here as everywhere, with one more
    options = " ".join(filter(None, [str(parsed.query.get("options", "")), "-c synchronous_commit=off"]))
    engine = sa.create_engine(
        parsed,
        isolation_level="AUTOCOMMIT",
        connect_args={**_connect_args(parsed), "options": options},
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_recycle=1800,
    )
    _make_sessions_utc(engine)
    return engine


def _connect_args(url: sa.URL) -> dict[str, Any]:
    if url.get_driver_name() != PSYCOPG:
        return {}
    return {"cursor_factory": last_result_cursor()}


def _make_sessions_utc(engine: Engine) -> None:
    """Every PostgreSQL session of ``engine`` speaks UTC, whatever the server's default time
    zone: the driver then reads each ``timestamptz`` as an aware UTC time, with nothing to
    convert (see :class:`~workflow_engine.store.schema.UTCDateTime`)."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("SET TIME ZONE 'UTC'")
        cursor.close()
        dbapi_connection.commit()


def _make_sqlite_safe(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # take over transaction control from the driver, so BEGIN is ours to emit
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        read_only = connection.get_execution_options().get(_READ_ONLY, False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def translate(error: exc.DBAPIError | exc.SQLAlchemyError) -> StoreError:
    """A database error as our own, marked transient when retrying may succeed, and
    unreachable when the server cannot be reached (or is shutting down): an outage."""
    transient = unreachable = False
    if isinstance(error, exc.DBAPIError):
        code = getattr(error.orig, "pgcode", None) or getattr(error.orig, "sqlstate", None)
        if isinstance(code, str):
            transient = code[:2] in _TRANSIENT_SQLSTATE_CLASSES
            unreachable = code[:2] == "08" or code in _SHUTTING_DOWN
        else:
            transient = error.connection_invalidated or isinstance(error, exc.OperationalError)
            # a PostgreSQL driver's error without a state: the connection could not be made or
            # was lost (SQLite's, such as a lock, never is)
            driver = type(error.orig).__module__.split(".")[0]
            unreachable = transient and driver in ("psycopg", "psycopg2")
    elif isinstance(error, exc.TimeoutError):  # connection pool exhausted
        transient = True
    detail = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
    return StoreError(f"database error: {detail}", transient=transient, unreachable=unreachable)


class StatementRunner(Protocol):
    """A transaction or a connection: anything that executes a statement (the store's reading
    and writing functions take one)."""

    def execute(self, statement: Any, parameters: Any = None) -> sa.CursorResult[Any]: ...


@contextmanager
def begin(engine: Engine, read_only: bool = False) -> Iterator[Connection]:
    """A transaction; database errors leave it as :class:`StoreError`."""
    try:
        with engine.connect() as connection:
            if read_only:
                connection = connection.execution_options(**{_READ_ONLY: True})
            with connection.begin():
                yield connection
    except (exc.DBAPIError, exc.TimeoutError) as error:
        raise translate(error) from error


def retrying(action: Callable[[], T], attempts: int = 5, pause: Callable[[float], None] | None = None) -> T:
    """Run ``action`` again when it fails with a transient store error (deadlock, lost link)."""
    sleep = pause or time.sleep
    for attempt in range(1, attempts + 1):
        try:
            return action()
        except StoreError as error:
            if not error.transient or attempt == attempts:
                raise
            sleep(min(0.05 * 2**attempt, 2.0))
    raise AssertionError("unreachable")  # pragma: no cover
