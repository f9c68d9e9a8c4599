"""An outage of the database is one line when it starts and one when it ends, whatever keeps
failing meanwhile; loops back off while it lasts."""

from __future__ import annotations

import logging

import pytest

from workflow_engine import outages
from workflow_engine.errors import StoreError
from workflow_engine.outages import Outage, is_outage, warn

pytestmark = pytest.mark.unit


def test_an_outage_is_one_line_at_its_start_and_one_at_its_end(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="workflow_engine.outages")
    outage = Outage("database")
    outage.ok()
    assert caplog.records == []
    for _ in range(50):
        outage.failed(StoreError("database error: connection refused\n  at port 5432", transient=True))
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
        outage.failed(StoreError("down", transient=True))
        waits.append(outage.pause(0.5))
    assert waits == [1.0, 2.0, 4.0, 5.0, 5.0, 5.0]
    outage.ok()
    assert outage.pause(0.5) == 0.5
    assert outage.pause(10.0) == 10.0


def test_only_a_transient_database_error_is_an_outage() -> None:
    assert is_outage(StoreError("connection refused", transient=True))
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
        warn(logger, StoreError("connection refused", transient=True), "publishing %d step(s) failed", 3)
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
    import kombu.exceptions
    import psycopg
    import sqlalchemy.exc

    assert is_outage(psycopg.errors.AdminShutdown("terminating connection due to administrator command"))
    assert is_outage(sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("connection refused")))
    assert not is_outage(kombu.exceptions.OperationalError("[Errno 111] Connection refused"))
