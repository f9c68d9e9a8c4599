"""The migrations produce exactly the models' schema, on SQLite and on PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from workflow_engine.store import migrate
from workflow_engine.store.database import create_engine
from workflow_engine.store.schema import metadata


def differences(url: str) -> list[object]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            return list(compare_metadata(context, metadata))
    finally:
        engine.dispose()


def test_models_and_migrations_agree(database_url: str) -> None:
    assert migrate.is_current(database_url)
    assert differences(database_url) == []


def test_migrations_downgrade_to_nothing_and_upgrade_again(database_url: str) -> None:
    migrate.downgrade(database_url, "base")
    assert not migrate.is_current(database_url)
    migrate.upgrade(database_url)
    assert differences(database_url) == []


def test_upgrading_names_reports_each_name_that_other_users_added_versions_to(database_url: str) -> None:
    migrate.downgrade(database_url, "0004")
    engine = create_engine(database_url)
    now = datetime.now(UTC)
    try:
        with engine.begin() as connection:
            ids = []
            for username in ("ann", "ben"):
                inserted = connection.execute(
                    sa.text(
                        "INSERT INTO wfe_users (username, role, active, created_at) "
                        "VALUES (:u, 'operator', true, :now) RETURNING id"
                    ),
                    {"u": username, "now": now},
                )
                ids.append(inserted.scalar_one())
            for name, version, author in (
                ("shared", "1.0.0", 0),
                ("shared", "2.0.0", 1),
                ("own", "1.0.0", 1),
            ):
                connection.execute(
                    sa.text(
                        "INSERT INTO wfe_workflows (name, version, description, document, digest, "
                        "created_by, created_at) VALUES (:n, :v, '', '{}', :d, :by, :now)"
                    ),
                    {"n": name, "v": version, "d": f"{name}{version}", "by": ids[author], "now": now},
                )
    finally:
        engine.dispose()
    notes = migrate.upgrade(database_url)
    assert len(notes) == 1, notes
    assert "'shared'" in notes[0] and "belongs to 'ann'" in notes[0]
    assert differences(database_url) == []
