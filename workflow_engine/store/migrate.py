"""Schema migrations (Alembic), run by `wfe db upgrade` and by tests on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from alembic import command, context
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


def note(message: str) -> None:
    """From a migration: tell whoever runs the upgrade of something it changed in their data."""
    context.config.attributes.setdefault("notes", []).append(message)


def upgrade(url: str, revision: str = "head") -> list[str]:
    """Bring the database at ``url`` to ``revision``; the notes its migrations left."""
    config = alembic_config(url)
    try:
        command.upgrade(config, revision)
    except (exc.DBAPIError, exc.TimeoutError) as error:
        raise translate(error) from error
    return list(config.attributes.get("notes", []))


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
