"""Spent refresh tokens and the audit of refused requests, in the database.

A refresh token is spent once: the primary key on its id refuses a second spend, so two
requests racing with the same token cannot both be exchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import sqlalchemy as sa

from workflow_engine.logs import printable
from workflow_engine.store import schema as t
from workflow_engine.store.transaction import Tx

AUDIT_KEPT = timedelta(days=90)


@dataclass(frozen=True, slots=True)
class AuditRecord:
    id: int
    at: datetime
    username: str | None
    address: str
    route: str
    status: int


def spend(tx: Tx, jti: str, user_id: int, reason: str, expires_at: datetime, now: datetime) -> bool:
    """Mark a refresh token spent; False when it was already (refreshed or revoked). Tokens
    expired by ``now`` (the clock tokens are issued by) are refused anyway: their rows go."""
    tx.execute(sa.delete(t.spent_tokens).where(t.spent_tokens.c.expires_at < now))
    values = {"jti": jti, "user_id": user_id, "reason": reason, "expires_at": expires_at, "spent_at": tx.now}
    return tx.insert_ignoring_conflicts(t.spent_tokens, values, ["jti"])


def record(tx: Tx, username: str | None, address: str, route: str, status: int) -> None:
    """Record a refused request; what the client chose (the username, the route) is kept on one
    line, its control characters escaped (a CR/LF in a username forges no line of `wfe audit`)."""
    a = t.audit
    values = {
        "at": tx.now,
        "username": printable(username)[:150] if username is not None else None,
        "address": printable(address)[:64],
        "route": printable(route)[:200],
        "status": status,
    }
    tx.execute(sa.insert(a).values(values))
    tx.execute(sa.delete(a).where(a.c.at < tx.now - AUDIT_KEPT))


def recent(db: Tx | sa.Connection, limit: int) -> list[AuditRecord]:
    a = t.audit
    rows = db.execute(sa.select(a).order_by(a.c.at.desc(), a.c.id.desc()).limit(limit))
    return [_shown(AuditRecord(**row._mapping)) for row in rows]


def _shown(row: AuditRecord) -> AuditRecord:
    """A row on one line (rows recorded before control characters were escaped, too)."""
    username = printable(row.username) if row.username is not None else None
    return replace(row, username=username, address=printable(row.address), route=printable(row.route))


def is_spent(db: Tx | sa.Connection, jti: str) -> bool:
    s = t.spent_tokens
    return db.execute(sa.select(s.c.jti).where(s.c.jti == jti)).first() is not None
