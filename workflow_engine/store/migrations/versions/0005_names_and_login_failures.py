"""Workflow names belong to whoever registered their first version; failed logins are counted.

``wfe_workflow_names`` records each name's owner: only that owner may register further versions
of it, and "latest" is chosen among that owner's versions only. Existing names are given to the
owner of their oldest version; each name that other users had added versions to is reported
(:func:`workflow_engine.store.migrate.note`), since those versions no longer run as "latest".
``wfe_login_failures`` keeps recent failed logins, by username
and by client address, so that every API process brakes the same guessing.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from workflow_engine.store.migrate import note

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "wfe_workflow_names",
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["wfe_users.id"], name="fk_wfe_workflow_names_owner_id_wfe_users"
        ),
        sa.PrimaryKeyConstraint("name", name="pk_wfe_workflow_names"),
    )
    op.execute(
        """
        INSERT INTO wfe_workflow_names (name, owner_id, created_at)
        SELECT w.name, w.created_by, w.created_at FROM wfe_workflows w
        WHERE w.id = (SELECT MIN(o.id) FROM wfe_workflows o WHERE o.name = w.name)
        """
    )
    shared = op.get_bind().execute(
        sa.text(
            """
            SELECT n.name, u.username FROM wfe_workflow_names n JOIN wfe_users u ON u.id = n.owner_id
            WHERE EXISTS (SELECT 1 FROM wfe_workflows w WHERE w.name = n.name AND w.created_by <> n.owner_id)
            ORDER BY n.name
            """
        )
    )
    for name, owner in shared:
        note(
            f"workflow {name!r} had versions registered by several users: it now belongs to {owner!r}, "
            "who registered its first version; versions by others stay stored but no longer run as latest"
        )
    op.create_table(
        "wfe_login_failures",
        sa.Column("id", ROW_ID, autoincrement=True, nullable=False),
        sa.Column("username", sa.String(150), nullable=False),
        sa.Column("address", sa.String(64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_wfe_login_failures"),
    )
    op.create_index("ix_wfe_login_failures_username_at", "wfe_login_failures", ["username", "at"])
    op.create_index("ix_wfe_login_failures_address_at", "wfe_login_failures", ["address", "at"])


def downgrade() -> None:
    op.drop_table("wfe_login_failures")
    op.drop_table("wfe_workflow_names")
