"""Publishing step work as Celery tasks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from celery import group

from workflow_engine.coordinator.dispatch import Dispatch
from workflow_engine.worker.app import EngineCelery, queue_name

TASKS = {"step": "wfe.step", "timer": "wfe.fire_timer"}


class CeleryDispatcher:
    """One task per step attempt; a fan-out goes out as a group over one producer connection."""

    def __init__(self, app: EngineCelery, hard_limit_grace: float = 30.0) -> None:
        self.app = app
        self.hard_limit_grace = hard_limit_grace

    def signature(self, item: Dispatch) -> Any:
        options: dict[str, Any] = {
            "task_id": item.task_id,
            "queue": queue_name(self.app.settings, item.queue),
            "shadow": f"{item.workflow}.{item.step}",
        }
        if item.eta is not None:
            options["eta"] = item.eta
        if item.kind == "step" and item.time_limit:
            options["soft_time_limit"] = item.time_limit
            options["time_limit"] = item.time_limit + self.hard_limit_grace
        return self.app.signature(
            TASKS[item.kind],
            args=(item.run_id, item.execution_id, item.step, item.attempt),
            kwargs={"workflow": item.workflow},
            **options,
        )

    def dispatch(self, items: Sequence[Dispatch]) -> None:
        if not items:
            return
        if len(items) == 1:
            self.signature(items[0]).apply_async()
            return
        group([self.signature(item) for item in items]).apply_async()

    def revoke(self, task_ids: Sequence[str], terminate: bool) -> None:
        self.app.control.revoke(list(task_ids), terminate=terminate, signal="SIGTERM")
