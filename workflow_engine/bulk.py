"""Bulk actions by filter: cancel, retry, pause or resume every execution a listing's filters
(or explicit ids) match, each in its own validated transition recorded with its actor.

Only the caller's executions match (``owner_id``; None: an admin's call, every owner). The ids
are taken first (at most :data:`MAX_BULK`, oldest first), so an action that changes statuses
does not move the set it walks. A dry run changes nothing and says how many would change.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any

from workflow_engine.coordinator.service import Coordinator
from workflow_engine.core.states import EXECUTION_TRANSITIONS, RETRYABLE_EXECUTION, ExecutionStatus
from workflow_engine.errors import Conflict, InputError, NotFound, Problem
from workflow_engine.store import listing
from workflow_engine.store.listing import ExecutionQuery

log = logging.getLogger(__name__)
E = ExecutionStatus
VERBS = ("cancel", "retry", "pause", "resume")
MAX_BULK = 10_000


def applies(verb: str, status: str) -> bool:
    """Whether ``verb`` can change an execution in ``status`` (the state machine's answer)."""
    allowed = EXECUTION_TRANSITIONS.get(E(status), frozenset())
    if verb == "cancel":
        return E.CANCELLED in allowed
    if verb == "pause":
        return E.PAUSED in allowed
    if verb == "resume":
        return status == E.PAUSED
    return status in RETRYABLE_EXECUTION


@dataclass(frozen=True)
class BulkResult:
    matched: int
    changed: int
    refused: int
    would_change: int | None = None  # a dry run's answer
    truncated: bool = False  # more matched than MAX_BULK: run it again for the rest

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Bulk:
    def __init__(self, coordinator: Coordinator) -> None:
        self.coordinator = coordinator
        self.store = coordinator.store

    def apply(
        self,
        verb: str,
        query: ExecutionQuery,
        actor: str = "api",
        owner_id: int | None = None,
        dry_run: bool = False,
        reason: str | None = None,
    ) -> BulkResult:
        if verb not in VERBS:
            raise InputError("verb", [Problem("", f"must be one of {', '.join(VERBS)}")])
        if not any((query.workflow, query.status, query.created_after, query.created_before, query.ids)):
            raise InputError(
                "filters", [Problem("", "give at least one filter or ids: a bulk action never means 'all'")]
            )
        with self.store.reading() as conn:
            matched = listing.matching(conn, replace(query, owner_id=owner_id), MAX_BULK + 1)
        truncated = len(matched) > MAX_BULK
        matched = matched[:MAX_BULK]
        if dry_run:
            would = sum(applies(verb, status) for _, status in matched)
            return BulkResult(len(matched), 0, 0, would_change=would, truncated=truncated)
        changed = refused = 0
        for execution_id, _ in matched:
            try:
                self._one(verb, execution_id, actor, owner_id, reason)
                changed += 1
            except (Conflict, NotFound):  # its state does not admit the verb (now): refused
                refused += 1
        log.info(
            "bulk %s by %s: %s matched, %s changed, %s refused", verb, actor, len(matched), changed, refused
        )
        return BulkResult(len(matched), changed, refused, truncated=truncated)

    def _one(
        self, verb: str, execution_id: str, actor: str, owner_id: int | None, reason: str | None
    ) -> None:
        c = self.coordinator
        if verb == "cancel":
            c.cancel(execution_id, actor, owner_id, reason or f"bulk cancel by {actor}")
        elif verb == "retry":
            c.retry(execution_id, actor, owner_id)
        elif verb == "pause":
            c.pause(execution_id, actor, owner_id, reason=reason or f"bulk pause by {actor}")
        else:
            c.resume(execution_id, actor, owner_id)
