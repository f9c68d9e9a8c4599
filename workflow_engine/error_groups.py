"""Error groups: failed attempts grouped by workflow, step, error type, code and masked message
(:mod:`workflow_engine.core.error_groups`), with their count, first and last seen and the
executions affected; and the retry of every failed execution of a group from its failed step.

Groups are read over a window (``since``), at most :data:`MAX_ATTEMPTS` of its newest failed
attempts, and only from the caller's executions (``owner_id``; None: an admin's, everyone's).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from workflow_engine.bulk import BulkResult
from workflow_engine.coordinator.service import Coordinator
from workflow_engine.core.error_groups import group_id, mask
from workflow_engine.core.states import ExecutionStatus
from workflow_engine.errors import Conflict, ErrorGroupNotFound, NotFound
from workflow_engine.store import failures as rows

MAX_ATTEMPTS = 100_000
DEFAULT_WINDOW = timedelta(days=1)


@dataclass
class ErrorGroup:
    group: str
    workflow: str
    step: str
    error_type: str
    code: str | None
    message: str
    count: int = 0
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    execution_ids: list[str] = field(default_factory=list)
    failed_execution_ids: list[str] = field(default_factory=list)  # those a retry would take

    def as_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        for name in ("first_seen", "last_seen"):
            out[name] = out[name].isoformat() if out[name] else None
        return out


class ErrorGroups:
    def __init__(self, coordinator: Coordinator) -> None:
        self.coordinator = coordinator
        self.store = coordinator.store

    def list(self, since: timedelta = DEFAULT_WINDOW, owner_id: int | None = None) -> list[ErrorGroup]:
        """The groups of failed attempts seen within ``since``, the most frequent first."""
        with self.store.reading() as db:
            attempts = rows.failed_attempts(db, self.store.clock.now() - since, owner_id, MAX_ATTEMPTS)
        groups: dict[str, ErrorGroup] = {}
        for attempt in reversed(attempts):  # oldest first
            masked = mask(attempt.error_message)
            key = group_id(attempt.workflow, attempt.step, attempt.error_type, attempt.error_code, masked)
            group = groups.get(key)
            if group is None:
                group = ErrorGroup(
                    key, attempt.workflow, attempt.step, attempt.error_type, attempt.error_code, masked
                )
                group.first_seen = attempt.finished_at
                groups[key] = group
            group.count += 1
            group.last_seen = attempt.finished_at
            if attempt.execution_id not in group.execution_ids:
                group.execution_ids.append(attempt.execution_id)
                if attempt.execution_status == ExecutionStatus.FAILED:
                    group.failed_execution_ids.append(attempt.execution_id)
        return sorted(groups.values(), key=lambda g: (-g.count, g.workflow, g.step, g.group))

    def get(self, group: str, since: timedelta = DEFAULT_WINDOW, owner_id: int | None = None) -> ErrorGroup:
        for found in self.list(since, owner_id):
            if found.group == group:
                return found
        raise ErrorGroupNotFound(group)

    def retry(
        self, group: str, actor: str = "api", owner_id: int | None = None, since: timedelta = DEFAULT_WINDOW
    ) -> BulkResult:
        """Retry every failed execution of the group from its failed step, each in its own
        recorded transition: {matched, changed, refused}."""
        found = self.get(group, since, owner_id)
        changed = refused = 0
        for execution_id in found.failed_execution_ids:
            try:
                self.coordinator.retry(execution_id, actor, owner_id, found.step)
                changed += 1
            except (Conflict, NotFound):
                refused += 1
        return BulkResult(len(found.failed_execution_ids), changed, refused)
