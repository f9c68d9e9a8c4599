"""Every URL form of a PostgreSQL database runs the same workflow the same way: TCP or a Unix
socket, with a password or without, through psycopg 3 or psycopg2."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from urllib.parse import quote

import pytest
import sqlalchemy as sa

from tests.support import services
from tests.support.harness import Harness, fan
from workflow_engine.store.urls import database_url

FORMS = ["postgresql", "postgres", "postgresql+psycopg", "postgresql+psycopg2"]
PASSWORD = "p@ss:w/rd%"  # every character a URL must escape


@pytest.fixture(scope="module")
def server_database(pg_databases: services.PostgresDatabases) -> Iterator[tuple[sa.URL, str]]:
    """A migrated database, and a role that logs in with a password and may use it."""
    url = sa.make_url(pg_databases.create())
    role = f"wfe_pw_{uuid.uuid4().hex[:6]}"
    with pg_databases.admin.connect() as connection:
        escaped = PASSWORD.replace("%", "%%")  # the driver reads % as a placeholder
        connection.exec_driver_sql(f"CREATE ROLE {role} LOGIN SUPERUSER PASSWORD '{escaped}'")
    try:
        yield url, role
    finally:
        with pg_databases.admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)')
            connection.exec_driver_sql(f"DROP ROLE IF EXISTS {role}")


def written(form: str, url: sa.URL, user: str, password: str | None, socket: str | None) -> str:
    """The URL as a user types it (not as SQLAlchemy renders it)."""
    credentials = quote(user, safe="") + (f":{quote(password, safe='')}" if password else "")
    if socket:
        return f"{form}://{credentials}@/{url.database}?host={socket}"
    return f"{form}://{credentials}@{url.host}:{url.port or 5432}/{url.database}"


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("way", ["tcp", "tcp+password", "socket"])
def test_a_fan_out_and_join_run_the_same_under_every_url_form(
    server_database: tuple[sa.URL, str], form: str, way: str
) -> None:
    url, role = server_database
    socket = None
    if way == "socket":
        socket = "/var/run/postgresql"
        if url.host not in ("127.0.0.1", "localhost") or not os.path.exists(
            f"{socket}/.s.PGSQL.{url.port or 5432}"
        ):
            pytest.skip("the test server has no socket in /var/run/postgresql")
    user, password = (role, PASSWORD) if way == "tcp+password" else (url.username or "postgres", None)
    typed = written(form, url, user, password, socket)
    assert database_url(typed).password == password
    harness = Harness(typed)
    try:
        harness.inline_steps = 5
        harness.register(fan(f"fan-{form.replace('+', '-')}", width=4))
        view = harness.run(f"fan-{form.replace('+', '-')}")
        assert view.status == "completed", view
        steps = ["start", "b0", "b1", "b2", "b3", "join"]
        assert harness.statuses(view.id) == dict.fromkeys(steps, "succeeded")
        driver = harness.store.engine.dialect.driver
        assert driver == ("psycopg2" if form.endswith("psycopg2") else "psycopg")
        # every engine of the store (the claims' and the outcomes' too) connects with the
        # password typed: the test servers trust local connections, so a lost one would not show
        engines = [harness.store.engine, harness.store._fast_engine, harness.store._pipeline_engine]
        assert all(engine is not None for engine in engines)
        assert {engine.url.password for engine in engines if engine is not None} == {password}
    finally:
        harness.close()
