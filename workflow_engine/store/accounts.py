"""Users' rows as an administrator changes them, and what a token needs checked on each request:
the user still there and active, the token's generation still the user's, its login (family)
not revoked.

A user's ``token_generation`` is raised to revoke every token issued before (a password
changed, "log out everywhere", a user disabled); a family is revoked when one of its spent
refresh tokens comes back, and its row kept until every token of it has expired.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from workflow_engine.store import schedules as schedule_rows
from workflow_engine.store import schema as t
from workflow_engine.store.records import UserRecord, from_row
from workflow_engine.store.transaction import Tx

_u, _f = t.users, t.revoked_families
# the tables that hold rows owned by a user (a user who owns some cannot be deleted)
OWNED = {
    "executions": (t.executions, t.executions.c.owner_id),
    "workflow versions": (t.workflows, t.workflows.c.created_by),
    "workflow names": (t.workflow_names, t.workflow_names.c.owner_id),
    "schedules": (t.schedules, t.schedules.c.owner_id),
    "test runs": (t.test_runs, t.test_runs.c.owner_id),
}


@dataclass(frozen=True)
class Holder:
    """The user a token names, as it is now."""

    user: UserRecord
    generation: int
    family_revoked: bool


def holder(db: Tx | sa.Connection, user_id: int, family: str | None) -> Holder | None:
    """One read: the user, their token generation, and whether ``family`` was revoked."""
    revoked: Any = sa.false()
    if family is not None:
        revoked = sa.exists().where(_f.c.family == family)
    row = db.execute(sa.select(_u, revoked.label("family_revoked")).where(_u.c.id == user_id)).first()
    if row is None:
        return None
    return Holder(from_row(UserRecord, row), int(row.token_generation), bool(row.family_revoked))


def everyone(db: Tx | sa.Connection, besides: str) -> list[UserRecord]:
    """Every user but ``besides`` (the system user), by name."""
    rows = db.execute(sa.select(_u).where(_u.c.username != besides).order_by(_u.c.username))
    return [from_row(UserRecord, row) for row in rows]


def locked(tx: Tx, username: str) -> UserRecord | None:
    """The user's row, locked until the transaction ends."""
    row = tx.execute(sa.select(_u).where(_u.c.username == username).with_for_update()).first()
    return from_row(UserRecord, row) if row is not None else None


def update(tx: Tx, user_id: int, values: dict[str, Any], revoke: bool = False) -> None:
    """Change the user's row; ``revoke``: every token issued so far is refused from now on."""
    if revoke:
        values = {**values, "token_generation": _u.c.token_generation + 1}
    tx.execute(sa.update(_u).where(_u.c.id == user_id).values(values))


def active_admins(tx: Tx, besides: str) -> list[str]:
    """The admins who can log in (the system user cannot), but ``besides``."""
    admins = (
        _u.c.role == "admin",
        _u.c.active.is_(True),
        _u.c.password_hash.is_not(None),
        _u.c.username != besides,
    )
    return list(tx.execute(sa.select(_u.c.username).where(*admins)).scalars())


def owned(tx: Tx, user_id: int) -> dict[str, int]:
    """How many rows of each kind the user owns (kinds with none left out)."""
    counts = {}
    for kind, (table, column) in OWNED.items():
        query = sa.select(sa.func.count()).select_from(table).where(column == user_id)
        count = tx.execute(query).scalar_one()
        if count:
            counts[kind] = int(count)
    return counts


def delete(tx: Tx, user: UserRecord) -> None:
    """The user's row goes, with their noted logins, spent tokens and revoked families."""
    tx.execute(sa.delete(t.login_failures).where(t.login_failures.c.username == user.username))
    tx.execute(sa.delete(t.spent_tokens).where(t.spent_tokens.c.user_id == user.id))
    tx.execute(sa.delete(_f).where(_f.c.user_id == user.id))
    tx.execute(sa.delete(_u).where(_u.c.id == user.id))


def revoke_family(tx: Tx, family: str, user_id: int, expires_at: datetime, now: datetime) -> None:
    """Refuse every token of ``family`` until ``expires_at`` (when all of them have expired)."""
    tx.execute(sa.delete(_f).where(_f.c.expires_at < now))
    values = {"family": family, "user_id": user_id, "expires_at": expires_at, "revoked_at": tx.now}
    tx.insert_ignoring_conflicts(_f, values, ["family"])


def pause_schedules(tx: Tx, owner_id: int, actor: str, reason: str) -> list[str]:
    """Pause every running schedule of ``owner_id``, each change recorded with ``reason``."""
    paused = []
    for record in schedule_rows.listing(tx, owner_id):
        if record.paused:
            continue
        schedule_rows.update(tx, record.id, {"paused": True, "updated_at": tx.now})
        schedule_rows.record_change(tx, record, "paused", actor, tx.now, {"reason": reason})
        paused.append(record.name)
    return paused
