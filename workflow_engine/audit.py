"""Refused requests and failed logins, recorded and listed for admins (`GET /audit`,
`wfe audit`); and refresh tokens spent once (exchanged or revoked by a logout)."""

from __future__ import annotations

import logging
from datetime import datetime

from workflow_engine.store import audit as rows
from workflow_engine.store.audit import AuditRecord
from workflow_engine.store.repository import Store

log = logging.getLogger(__name__)


class Audit:
    def __init__(self, store: Store) -> None:
        self.store = store

    def record(self, username: str | None, address: str, route: str, status: int) -> None:
        """Record a refused request; a failure to record is logged, never the caller's error."""
        try:
            with self.store.transaction() as tx:
                rows.record(tx, username, address, route, status)
        except Exception:
            log.exception("could not record a refused request to %s", route)

    def recent(self, limit: int = 100) -> list[AuditRecord]:
        """The newest first."""
        with self.store.reading() as db:
            return rows.recent(db, limit)

    def spend(self, jti: str, user_id: int, reason: str, expires_at: datetime, now: datetime) -> bool:
        """Spend a refresh token: False when it was spent already."""
        with self.store.transaction() as tx:
            return rows.spend(tx, jti, user_id, reason, expires_at, now)

    def is_spent(self, jti: str) -> bool:
        """Whether a refresh token was spent (a monitor session ended by its logout)."""
        with self.store.reading() as db:
            return rows.is_spent(db, jti)
