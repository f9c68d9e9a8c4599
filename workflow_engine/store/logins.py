"""Failed logins, kept in the database so that every API process counts the same ones.

An attempt is noted *before* its password is checked and forgotten when the password is right:
concurrent guesses therefore see each other, and none can slip under the brake by racing it.
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


class LoginFailures:
    def __init__(self, store: Store) -> None:
        self.store = store

    def note(self, username: str, address: str, forget_before: datetime) -> Attempt:
        """Note an attempt now (a failure until :meth:`clear` says otherwise), and forget those
        older than ``forget_before``."""
        f = t.login_failures
        with self.store.transaction() as tx:
            tx.execute(sa.delete(f).where(f.c.at < forget_before))
            noted = sa.insert(f).values(username=username[:150], address=address[:64], at=tx.now)
            return Attempt(tx.execute(noted.returning(f.c.id)).scalar_one(), tx.now)

    def before(
        self, attempt: Attempt, username: str, address: str, since: datetime
    ) -> tuple[list[datetime], list[datetime]]:
        """When the attempts since ``since`` and before ``attempt`` were noted: those for
        ``username``, and those from ``address``."""
        f = t.login_failures
        recent = sa.select(f.c.at).where(f.c.at >= since, f.c.id < attempt.id).order_by(f.c.id)
        with self.store.reading() as conn:
            by_user = list(conn.execute(recent.where(f.c.username == username[:150])).scalars())
            by_address = list(conn.execute(recent.where(f.c.address == address[:64])).scalars())
        return by_user, by_address

    def forget(self, attempt: Attempt) -> None:
        """Take back an attempt that was refused before its password was checked."""
        with self.store.transaction() as tx:
            tx.execute(sa.delete(t.login_failures).where(t.login_failures.c.id == attempt.id))

    def clear(self, username: str) -> None:
        """A successful login: the user's failures (this attempt's note with them) are forgotten."""
        with self.store.transaction() as tx:
            tx.execute(sa.delete(t.login_failures).where(t.login_failures.c.username == username[:150]))
