"""Every PostgreSQL session speaks UTC, whatever the server's or the database's default time
zone: times are read as the driver gives them (no conversion per value), and are UTC."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
import sqlalchemy as sa

from tests.support.harness import Harness
from workflow_engine.definitions import WorkflowBuilder

pytestmark = pytest.mark.store


@pytest.mark.parametrize("backend", ["postgresql", "postgresql+psycopg2"])
def test_times_read_on_a_database_whose_default_zone_is_not_utc_are_utc(
    new_database_url: Callable[[str], str], backend: str
) -> None:
    url = new_database_url(backend)
    database = sa.make_url(url).database
    admin = sa.create_engine(
        sa.make_url(url).set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.exec_driver_sql(f"ALTER DATABASE \"{database}\" SET timezone TO 'Asia/Tokyo'")
    admin.dispose()
    harness = Harness(url)
    try:
        harness.register(WorkflowBuilder("two").agent("a").agent("b"))
        execution = harness.start("two")
        harness.deliver_one()  # a: claimed (the claim statement) and recorded (the outcome's)
        record = harness.store.get_execution(execution.id)
        runs = harness.runs(execution.id)
        times = [record.created_at, record.updated_at, record.started_at]
        times += [run.queued_at for run in runs] + [run.started_at for run in runs if run.started_at]
        assert all(moment is not None and moment.utcoffset() == timedelta(0) for moment in times), times
        with harness.store.engine.connect() as conn:
            assert conn.exec_driver_sql("SHOW timezone").scalar() == "UTC"
    finally:
        harness.close()
