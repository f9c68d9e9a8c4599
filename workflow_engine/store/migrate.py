"""Schema migrations (Alembic), run by `wfe db upgrade` and by tests on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import exc
from sqlalchemy.engine import Engine

from workflow_engine.store.database import create_engine, translate

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database at ``url`` to ``revision``."""
    try:
        command.upgrade(alembic_config(url), revision)
    except (exc.DBAPIError, exc.TimeoutError) as error:
        raise translate(error) from error


def downgrade(url: str, revision: str) -> None:
    command.downgrade(alembic_config(url), revision)


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    except (exc.DBAPIError, exc.TimeoutError) as error:
        raise translate(error) from error


def is_current(url: str) -> bool:
    engine = create_engine(url)
    try:
        return current_revision(engine) == head_revision()
    finally:
        engine.dispose()
