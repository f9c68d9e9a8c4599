"""Finding PostgreSQL and Redis for tests, and making throwaway databases on them."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import sys
import uuid
from urllib.parse import urlsplit

import sqlalchemy as sa

from workflow_engine.store import migrate
from workflow_engine.store.urls import database_url

PG_CTL = next(
    iter(sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), reverse=True)), None
) or shutil.which("pg_ctl")
REDIS_SERVER = shutil.which("redis-server")


def answers(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def postgres_url() -> str | None:
    """A reachable server from WFE_TEST_DATABASE_URL or the standard local port, or None."""
    configured = os.environ.get("WFE_TEST_DATABASE_URL")
    if configured:
        return configured
    if answers("127.0.0.1", 5432):
        return "postgresql://postgres@127.0.0.1:5432/postgres"
    return None


def redis_url() -> str | None:
    configured = os.environ.get("WFE_TEST_REDIS_URL")
    if configured:
        return configured
    if answers("127.0.0.1", 6379):
        return "redis://127.0.0.1:6379/0"
    return None


def rabbitmq_url() -> str | None:
    configured = os.environ.get("WFE_TEST_AMQP_URL")
    if configured:
        return configured
    if answers("127.0.0.1", 5672):
        return "amqp://guest:guest@127.0.0.1:5672//"
    return None


def environment_without_settings() -> dict[str, str]:
    """This process's environment less every WFE_ setting: what a fresh shell would give."""
    return {k: v for k, v in os.environ.items() if not k.startswith("WFE_")}


def with_scheme(url: str, scheme: str) -> str:
    """``url`` with its scheme (and so its driver) replaced: ``postgresql+psycopg2``, say."""
    return sa.make_url(url).set(drivername=scheme).render_as_string(hide_password=False)


class PostgresDatabases:
    """Fresh migrated databases cloned from a template; every one is dropped at the end."""

    def __init__(self, server_url: str) -> None:
        self.server = sa.make_url(server_url)
        self.admin = sa.create_engine(
            database_url(self.server), isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool
        )
        self.prefix = f"wfe_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        self.template = f"{self.prefix}_template"
        self.created: list[str] = []
        with self.admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{self.template}"')
        migrate.upgrade(self.url(self.template))

    def url(self, database: str) -> str:
        return self.server.set(database=database).render_as_string(hide_password=False)

    def create(self) -> str:
        name = f"{self.prefix}_{len(self.created)}"
        with self.admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
        self.created.append(name)
        return self.url(name)

    def drop_all(self) -> None:
        """Drop the databases made; one whose drop waits on another session's lock for more than
        a few seconds (another test run creating databases on the same server) is left behind
        with a line on stderr: its name is this run's own."""
        with self.admin.connect() as conn:
            conn.exec_driver_sql("SET lock_timeout = '5s'")
            conn.exec_driver_sql("SET statement_timeout = '30s'")
            for name in [*self.created, self.template]:
                try:
                    conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                except sa.exc.OperationalError as error:
                    sys.stderr.write(f"database {name} left behind: {error.orig}\n")
        self.admin.dispose()


def host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 0
