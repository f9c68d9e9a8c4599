"""Schema migrations (Alembic), run by `wfe db upgrade` and by tests on SQLite and PostgreSQL."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
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
        with engine.connect() as connection, _quiet_alembic():
            return MigrationContext.configure(connection).get_current_revision()
    except (exc.DBAPIError, exc.TimeoutError) as error:
        raise translate(error) from error


_looking = ContextVar("wfe_looking_at_revision", default=False)


class _WhileLooking(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.INFO or not _looking.get()


_FILTER = _WhileLooking()


@contextmanager
def _quiet_alembic() -> Iterator[None]:
    """Alembic says which dialect it talks to (at INFO) whenever it looks at a database: worth
    nothing when every process looks once as it starts, so not said then (an upgrade still
    says what it does). Only this thread's looking is quietened."""
    logger = logging.getLogger("alembic.runtime.migration")
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
    token = _looking.set(True)
    try:
        yield
    finally:
        _looking.reset(token)


def is_current(url: str) -> bool:
    engine = create_engine(url)
    try:
        return current_revision(engine) == head_revision()
    finally:
        engine.dispose()
