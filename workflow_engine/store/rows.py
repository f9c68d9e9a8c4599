"""The rows a decision writes, as plain data: an event, and a run taken to run in place.
No I/O: the decision builds them, the store writes them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from workflow_engine.core.states import StepStatus

RUN_IN_PLACE = "run in place by the worker"  # the reason recorded on a run taken in place


def event_row(
    execution_id: str,
    step_name: str | None,
    attempt: int | None,
    from_status: str | None,
    to_status: str,
    actor: str,
    created_at: datetime,
    reason: str | None = None,
    details: Any = None,
) -> dict[str, Any]:
    """One row of the events table: a transition, or a repair, of an execution or a step."""
    return {
        "execution_id": execution_id,
        "step_name": step_name,
        "attempt": attempt,
        "from_status": from_status,
        "to_status": str(to_status),
        "actor": actor,
        "reason": reason,
        "details": details,
        "created_at": created_at,
    }


def item_details(index: int | None) -> dict[str, int] | None:
    """An event's details for a map item: which item it is."""
    return None if index is None else {"index": index}


def in_place(worker: str, task_id: str | None, now: datetime) -> dict[str, Any]:
    """What a run taken to run in place by ``worker`` (in the Celery task ``task_id``) is set to;
    it has no message of its own (``FINISH_COUNTED`` in store.counted sets the same in SQL).
    Its input stays as it is (see :func:`input_of`)."""
    return {
        "status": StepStatus.RUNNING,
        "worker": worker,
        "task_id": task_id,
        "published_at": None,
        "started_at": now,
        "heartbeat_at": now,
    }


def input_of(row_input: Any, execution_input: Any) -> Any:
    """What a run's agent gets as input: a map item's own, or else the execution's. A run
    stores only its own (NULL: the execution's), never a copy of its execution's."""
    return execution_input if row_input is None else row_input
