"""Logins, kept in the database so that every API process counts the same ones.

An attempt is noted *before* its password is checked (as a failure) and marked a success when
the password is right, the user's failures then forgotten: concurrent guesses therefore see each
other, and successful logins are counted too (each one took a password hash). Noting and
counting happen in one transaction that holds a lock per username and one per address
(PostgreSQL advisory locks, always taken in that order; SQLite serialises writers anyway), so no
two attempts can miss each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from workflow_engine.store import schema as t
from workflow_engine.store.repository import Store


@dataclass(frozen=True)
class Attempt:
    id: int
    at: datetime


@dataclass(frozen=True)
class Noted:
    """An attempt just noted, with when the attempts before it in the window were noted: those
    that failed for its username, and from its address, and the successful logins of its
    username (oldest first)."""

    attempt: Attempt
    by_user: list[datetime]
    by_address: list[datetime]
    succeeded: list[datetime]


class LoginFailures:
    def __init__(self, store: Store) -> None:
        self.store = store

    def note(self, username: str, address: str, since: datetime) -> Noted:
        """Note an attempt now (a failure until :meth:`succeed` says otherwise), count those since
        ``since``, and forget older ones."""
        f = t.login_failures
        username, address = username[:150], address[:64]
        with self.store.transaction() as tx:
            tx.serialize(f"wfe-login-user:{username}")
            tx.serialize(f"wfe-login-address:{address}")
            tx.execute(sa.delete(f).where(f.c.at < since))
            noted = sa.insert(f).values(username=username, address=address, at=tx.now)
            attempt = Attempt(tx.execute(noted.returning(f.c.id)).scalar_one(), tx.now)
            earlier = sa.select(f.c.at).where(f.c.id < attempt.id).order_by(f.c.id)
            failed = earlier.where(f.c.succeeded.is_(False))
            by_user = list(tx.execute(failed.where(f.c.username == username)).scalars())
            by_address = list(tx.execute(failed.where(f.c.address == address)).scalars())
            ok = earlier.where(f.c.succeeded.is_(True), f.c.username == username)
            succeeded = list(tx.execute(ok).scalars())
        return Noted(attempt, by_user, by_address, succeeded)

    def forget(self, attempt: Attempt) -> None:
        """Take back an attempt that was refused before its password was checked."""
        with self.store.transaction() as tx:
            tx.execute(sa.delete(t.login_failures).where(t.login_failures.c.id == attempt.id))

    def succeed(self, attempt: Attempt, username: str) -> None:
        """A successful login: the user's failures are forgotten, this attempt stays noted as a
        success (counted by the brake on successes)."""
        f = t.login_failures
        with self.store.transaction() as tx:
            mine = f.c.username == username[:150]
            tx.execute(sa.delete(f).where(mine, f.c.succeeded.is_(False), f.c.id != attempt.id))
            tx.execute(sa.update(f).where(f.c.id == attempt.id).values(succeeded=True))
