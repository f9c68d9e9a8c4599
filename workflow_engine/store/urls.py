"""Database URLs: every form a user writes, each mapped to one driver; anything else refused.

PostgreSQL URLs come as ``psql``, ``pg_dump`` and hosting providers print them
(``postgresql://`` and Heroku's or Render's ``postgres://``) or with SQLAlchemy's driver suffix.
Both plain forms mean psycopg 3, SQLAlchemy 2's own default and the maintained driver;
``postgresql+psycopg2://`` keeps psycopg2. Both drivers are runtime dependencies, and the engine
behaves the same on either (see :func:`workflow_engine.store.database.create_engine`).
"""

from __future__ import annotations

import importlib
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import exc

from workflow_engine.errors import ConfigurationError

ACCEPTED = (
    "sqlite:///PATH, postgresql://USER[:PASSWORD]@HOST[:PORT]/DB (also postgres://, "
    "postgresql+psycopg://, postgresql+psycopg2://; a socket with ?host=/PATH)"
)
PSYCOPG = "psycopg"
PSYCOPG2 = "psycopg2"
# the scheme a user writes -> (backend, driver)
_SCHEMES = {
    "sqlite": ("sqlite", "pysqlite"),
    "sqlite+pysqlite": ("sqlite", "pysqlite"),
    "postgresql": ("postgresql", PSYCOPG),
    "postgres": ("postgresql", PSYCOPG),
    "postgresql+psycopg": ("postgresql", PSYCOPG),
    "postgresql+psycopg2": ("postgresql", PSYCOPG2),
}
_MODULES = {PSYCOPG: "psycopg", PSYCOPG2: "psycopg2", "pysqlite": "sqlite3"}


def database_url(url: str | sa.URL) -> sa.URL:
    """``url`` with its driver named, or :class:`ConfigurationError` saying which forms work."""
    try:
        parsed = sa.make_url(url)
    except (exc.ArgumentError, ValueError, TypeError):
        raise ConfigurationError(f"the database URL cannot be read; use {ACCEPTED}") from None
    scheme = parsed.drivername.lower()
    if scheme not in _SCHEMES:
        raise ConfigurationError(f"database URLs of the form {scheme}:// are not supported; use {ACCEPTED}")
    backend, driver = _SCHEMES[scheme]
    if parsed.host and "@" in parsed.host:  # an unescaped @ in the password: say so, show neither part
        raise ConfigurationError("the database URL has an @ in its password or user name: write it as %40")
    try:
        importlib.import_module(_MODULES[driver])
    except ImportError as error:
        raise ConfigurationError(
            f"{scheme}:// needs the {_MODULES[driver]} module, which cannot be imported: {error}"
        ) from None
    return parsed.set(drivername=f"{backend}+{driver}")


def driver(url: str | sa.URL) -> str:
    """The driver ``url`` connects with: ``psycopg``, ``psycopg2`` or ``pysqlite``."""
    return database_url(url).get_driver_name()


def shown(url: str | sa.URL) -> str:
    """``url`` as a person may see it: the password masked, a SQLite file's path made absolute."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        parsed = parsed.set(database=str(Path(parsed.database).resolve()))
    return parsed.render_as_string(hide_password=True)
