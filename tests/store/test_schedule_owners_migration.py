"""Upgrading to schedules per owner (0018) gives each existing change to the schedule that bears
its name since before it was made; a deleted namesake's changes stay with no schedule. Going
back renames the names several owners use."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from workflow_engine.store import migrate
from workflow_engine.store.database import create_engine

pytestmark = pytest.mark.store


def test_existing_changes_belong_to_the_schedule_made_before_them(database_url: str) -> None:
    migrate.downgrade(database_url, "0017")
    engine = create_engine(database_url)
    long_ago = datetime(2026, 1, 1, tzinfo=UTC)
    created = long_ago + timedelta(days=30)
    try:
        with engine.begin() as connection:
            user = connection.execute(
                sa.text(
                    "INSERT INTO wfe_users (username, role, active, created_at) "
                    "VALUES ('ann', 'operator', true, :now) RETURNING id"
                ),
                {"now": long_ago},
            ).scalar_one()
            schedule = connection.execute(
                sa.text(
                    "INSERT INTO wfe_schedules (name, owner_id, workflow, timezone, overlap, "
                    "catchup_window, paused, next_fire_at, created_at, updated_at, every) VALUES "
                    "('nightly', :user, 'w', 'UTC', 'skip', 0, false, :at, :at, :at, 60) RETURNING id"
                ),
                {"user": user, "at": created},
            ).scalar_one()
            for at, action in ((long_ago, "created"), (long_ago, "deleted"), (created, "created")):
                connection.execute(
                    sa.text(
                        "INSERT INTO wfe_schedule_changes (schedule_name, action, actor, created_at) "
                        "VALUES ('nightly', :action, 'ann', :at)"
                    ),
                    {"action": action, "at": at},
                )
    finally:
        engine.dispose()
    migrate.upgrade(database_url)
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                sa.text("SELECT action, schedule_id FROM wfe_schedule_changes ORDER BY id")
            ).all()
    finally:
        engine.dispose()
    assert [(row.action, row.schedule_id) for row in rows] == [
        ("created", None),  # the deleted namesake's
        ("deleted", None),
        ("created", schedule),
    ]
