"""An outage of the database is one line when it starts and one when it ends, whatever keeps
failing meanwhile; loops back off while it lasts."""

from __future__ import annotations

import logging
import socket
import sqlite3

import kombu.exceptions
import psycopg
import pytest
import sqlalchemy.exc

from workflow_engine import outages
from workflow_engine.errors import StoreError
from workflow_engine.outages import Outage, is_outage, warn
from workflow_engine.store.database import begin, create_engine, translate

pytestmark = pytest.mark.unit


def test_an_outage_is_one_line_at_its_start_and_one_at_its_end(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="workflow_engine.outages")
    outage = Outage("database")
    outage.ok()
    assert caplog.records == []
    for _ in range(50):
        outage.failed(StoreError("database error: connection refused\n  at port 5432", unreachable=True))
    outage.ok()
    outage.ok()
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 2
    assert (
        lines[0]
        == "database unreachable, retrying until it is back: database error: connection refused at port 5432"
    )
    assert lines[1].startswith("database reachable again after ") and lines[1].endswith("(50 calls failed)")
    assert all(record.exc_info is None for record in caplog.records)  # no traceback


def test_loops_back_off_while_it_lasts_and_not_otherwise() -> None:
    outage = Outage("database")
    assert outage.pause(0.5) == 0.5
    waits = []
    for _ in range(6):
        outage.failed(StoreError("down", unreachable=True))
        waits.append(outage.pause(0.5))
    assert waits == [1.0, 2.0, 4.0, 5.0, 5.0, 5.0]
    outage.ok()
    assert outage.pause(0.5) == 0.5
    assert outage.pause(10.0) == 10.0


def test_only_an_unreachable_database_is_an_outage() -> None:
    assert is_outage(StoreError("connection refused", unreachable=True))
    assert not is_outage(StoreError("database is locked", transient=True))  # contention, not an outage
    assert not is_outage(StoreError("syntax error", transient=False))
    assert not is_outage(ValueError("no"))


def test_warn_leaves_an_outage_to_its_one_line_and_logs_anything_else_with_its_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    logger = logging.getLogger("workflow_engine.test")
    outages.DATABASE.ok()
    try:
        raise ValueError("a bug")
    except ValueError as exc:
        warn(logger, exc, "publishing %d step(s) failed", 3)
    for _ in range(3):
        warn(logger, StoreError("connection refused", unreachable=True), "publishing %d step(s) failed", 3)
    outages.DATABASE.ok()
    assert [(r.name, r.getMessage(), r.exc_info is not None) for r in caplog.records] == [
        ("workflow_engine.test", "publishing 3 step(s) failed", True),
        (
            "workflow_engine.outages",
            "database unreachable, retrying until it is back: connection refused",
            False,
        ),
        ("workflow_engine.outages", caplog.records[2].getMessage(), False),
    ]
    assert caplog.records[2].getMessage().endswith("(3 calls failed)")


def test_a_database_drivers_operational_error_is_an_outage_and_a_brokers_is_not() -> None:
    assert is_outage(psycopg.errors.AdminShutdown("terminating connection due to administrator command"))
    refused = psycopg.OperationalError("connection failed: Connection refused")
    assert is_outage(sqlalchemy.exc.OperationalError("SELECT 1", {}, refused))
    assert not is_outage(sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("database is locked")))
    assert not is_outage(kombu.exceptions.OperationalError("[Errno 111] Connection refused"))


def test_a_lock_on_sqlite_is_transient_and_a_refused_connection_to_postgresql_is_an_outage() -> None:
    locked = sqlalchemy.exc.OperationalError(
        "BEGIN IMMEDIATE", {}, sqlite3.OperationalError("database is locked")
    )
    lock = translate(locked)
    assert (lock.transient, lock.unreachable, is_outage(lock)) == (True, False, False)
    url = f"postgresql://postgres@127.0.0.1:{unused_port()}/postgres?connect_timeout=2"
    with pytest.raises(StoreError) as refused, begin(create_engine(url)) as connection:
        connection.exec_driver_sql("SELECT 1")
    assert (refused.value.transient, refused.value.unreachable, is_outage(refused.value)) == (
        True,
        True,
        True,
    )
    shutdown = sqlalchemy.exc.OperationalError("SELECT 1", {}, psycopg.errors.AdminShutdown("terminating"))
    assert translate(shutdown).unreachable


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
