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

import pytest

from tests.support import services
from tests.support.harness import Harness
from workflow_engine.store import migrate
from workflow_engine.store.opening import store_for
from workflow_engine.store.repository import Store

ROOT = Path(__file__).resolve().parent.parent
MARKERS_BY_FOLDER = {
    "unit": "unit",
    "store": "store",
    "coordinator": "store",
    "cli": "unit",
    "integration": "integration",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).relative_to(ROOT / "tests").parts
        marker = MARKERS_BY_FOLDER.get(parts[0]) if len(parts) > 1 else None
        if marker:
            item.add_marker(marker)


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
