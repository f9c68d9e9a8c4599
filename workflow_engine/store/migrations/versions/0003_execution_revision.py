"""Executions carry a revision that moves on with every update of their row, so that an outcome
planned against a known row can be recorded in one statement on condition it is unchanged.

The database moves it (a trigger), so that every writer counts, whatever its release: during a
rolling upgrade, a process of the previous release writes rows too.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TRIGGER = "wfe_executions_revision"


def upgrade() -> None:
    with op.batch_alter_table("wfe_executions") as batch:
        batch.add_column(sa.Column("revision", sa.Integer(), nullable=False, server_default=sa.text("0")))
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"CREATE FUNCTION {TRIGGER}() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN NEW.revision := OLD.revision + 1; RETURN NEW; END $$"
        )
        op.execute(
            f"CREATE TRIGGER {TRIGGER} BEFORE UPDATE ON wfe_executions "
            f"FOR EACH ROW EXECUTE FUNCTION {TRIGGER}()"
        )
    else:
        op.execute(
            "CREATE TRIGGER wfe_executions_revision AFTER UPDATE ON wfe_executions "
            "FOR EACH ROW WHEN NEW.revision = OLD.revision BEGIN "
            "UPDATE wfe_executions SET revision = OLD.revision + 1 WHERE id = NEW.id; END"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP TRIGGER {TRIGGER} ON wfe_executions")
        op.execute(f"DROP FUNCTION {TRIGGER}()")
    else:
        op.execute(f"DROP TRIGGER {TRIGGER}")
    with op.batch_alter_table("wfe_executions") as batch:
        batch.drop_column("revision")
