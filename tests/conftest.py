"""Shared fixtures: databases on SQLite and PostgreSQL, markers by folder.

PostgreSQL and Redis come from ``WFE_TEST_DATABASE_URL`` / ``WFE_TEST_REDIS_URL``, else from the
standard local ports when they answer, else from throwaway servers started from the installed
binaries (pytest-postgresql, pytest-redis). A service that cannot be had skips its tests locally
and fails them in CI (``CI=true``).
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn

import pytest

from tests.support import services
from tests.support.harness import Harness
from workflow_engine.store import migrate
from workflow_engine.store.opening import store_for
from workflow_engine.store.repository import Store

ROOT = Path(__file__).resolve().parent.parent
# What each test needs, by folder or file under tests/ (the longest match wins; a test's own
# marker wins over both): `unit` needs no server and starts no worker, `store` needs a database
# server (PostgreSQL, and runs on SQLite too), `integration` needs a broker or real processes.
KIND_BY_PATH = {
    "core": "unit",
    "definitions": "unit",
    "ui": "unit",
    "worker": "unit",
    "testing": "unit",  # the product's harness, always on SQLite
    "cli": "unit",  # `wfe` commands on SQLite
    "cli/test_agents_cli.py": "store",
    "cli/test_agent_files.py": "integration",  # `wfe run` starts a worker
    "cli/test_run_interrupt.py": "integration",  # as above
    "api": "store",  # the API in process on PostgreSQL
    "api/test_json_bodies.py": "unit",
    "coordinator": "store",
    "coordinator/test_deciding.py": "unit",
    "coordinator/test_delivery.py": "unit",
    "coordinator/test_runs.py": "unit",
    "store": "store",
    "store/test_urls.py": "unit",
    "integration": "integration",
    "test_events.py": "store",
    "test_imports.py": "unit",
    "test_log_lines.py": "unit",
    "test_notify.py": "store",
    "test_outages.py": "unit",
}
KINDS = frozenset(KIND_BY_PATH.values())
# the fixtures that reach a server: a unit test that asks for one fails before it starts
SERVER_FIXTURES = frozenset({"postgres_server", "pg_databases", "redis_url", "amqp_url"})


def kind_of(path: Path) -> str | None:
    parts = path.relative_to(ROOT / "tests").parts
    for end in range(len(parts), 0, -1):
        kind = KIND_BY_PATH.get("/".join(parts[:end]))
        if kind:
            return kind
    return None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if any(item.get_closest_marker(name) for name in KINDS):
            continue
        kind = kind_of(item.path)
        if kind:
            item.add_marker(kind)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    asked = SERVER_FIXTURES.intersection(getattr(item, "fixturenames", ()))
    if item.get_closest_marker("unit") and asked:
        pytest.fail(f"a unit test needs no server, and this one asks for {', '.join(sorted(asked))}")


@pytest.fixture(autouse=True)
def unit_tests_reach_no_server(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """A unit test that reaches for a server at run time (a store parametrised over PostgreSQL,
    a database made on demand) fails, even where the servers answer."""
    if request.node.get_closest_marker("unit") is None:
        return

    def refuse(*_args: object, **_kwargs: object) -> NoReturn:
        pytest.fail("a unit test needs no server, and this one reached for one")

    for name in ("postgres_url", "redis_url", "rabbitmq_url"):
        monkeypatch.setattr(services, name, refuse)
    monkeypatch.setattr(services.PostgresDatabases, "create", refuse)


def unavailable(reason: str) -> None:
    """Skip locally, fail in CI: a missing service must not turn CI green."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"required service unavailable in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def postgres_server(request: pytest.FixtureRequest) -> str:
    """A PostgreSQL server URL (database part to be replaced)."""
    url = services.postgres_url()
    if url is None:
        if services.PG_CTL is None:
            unavailable("no PostgreSQL server and no pg_ctl to start one")
        proc = request.getfixturevalue("throwaway_postgres")
        url = f"postgresql://{proc.user}@{proc.host}:{proc.port}/postgres"
    return url


@pytest.fixture(scope="session")
def pg_databases(postgres_server: str) -> Iterator[services.PostgresDatabases]:
    databases = services.PostgresDatabases(postgres_server)
    try:
        yield databases
    finally:
        databases.drop_all()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    migrate.upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture
def new_database_url(
    request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path
) -> Callable[[str], str]:
    """Make a fresh, migrated database on ``"sqlite"`` or ``"postgresql"``; returns its URL."""

    def make(backend: str) -> str:
        if backend == "sqlite":
            path = tmp_path / f"{uuid.uuid4().hex[:8]}.db"
            shutil.copyfile(sqlite_template, path)
            return f"sqlite:///{path}"
        databases: services.PostgresDatabases = request.getfixturevalue("pg_databases")
        return services.with_scheme(databases.create(), backend)

    return make


# "postgresql" is the plain URL a user writes (psycopg 3); psycopg2 is the other supported driver
STORES = ["sqlite", "postgresql", "postgresql+psycopg2"]


@pytest.fixture(params=STORES, ids=["sqlite", "psycopg", "psycopg2"])
def database_url(request: pytest.FixtureRequest, new_database_url: Callable[[str], str]) -> str:
    """The same test on every store and driver (one contract suite for every store)."""
    return new_database_url(request.param)


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    store = store_for(database_url)
    try:
        yield store
    finally:
        store.dispose()


if services.PG_CTL is not None:
    from pytest_postgresql import factories as _pg_factories

    throwaway_postgres = _pg_factories.postgresql_proc(executable=services.PG_CTL, port=None)


@pytest.fixture
def harness(database_url: str) -> Iterator[Harness]:
    """The coordinator driven in-process on a real database (SQLite and PostgreSQL)."""
    harness = Harness(database_url)
    try:
        yield harness
    finally:
        harness.close()
