"""What the coordinator asks of a broker: publish step work, revoke it. Celery implements it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol

from workflow_engine.definitions.model import StepDefinition, StepType


@dataclass(frozen=True, slots=True)
class Dispatch:
    """One message to publish: run a step attempt, or fire a timer, not before ``eta``."""

    run_id: int
    execution_id: str
    workflow: str
    step: str
    attempt: int
    kind: Literal["step", "timer"] = "step"
    eta: datetime | None = None
    queue: str | None = None
    time_limit: float | None = None
    index: int | None = None  # a map step's item
    rated: bool = False  # its agent has a rate limit: checked before the run is claimed
    celery_task: str | None = None  # a task step's Celery task: the name Flower shows
    task_id: str = field(kw_only=True)  # the broker's task id (see task_id)

    @classmethod
    def of(
        cls,
        step: StepDefinition,
        run_id: int,
        execution_id: str,
        workflow: str,
        attempt: int,
        eta: datetime | None = None,
        index: int | None = None,
        now: datetime | None = None,
    ) -> Dispatch:
        """The message of an attempt of ``step`` (of its item ``index``); an ``eta`` that is not
        after ``now`` is none (the message is for at once)."""
        if eta is not None and now is not None and eta <= now:
            eta = None
        return cls(
            run_id=run_id,
            execution_id=execution_id,
            workflow=workflow,
            step=step.name,
            attempt=attempt,
            kind="timer" if step.type in (StepType.TIMER, StepType.WAIT) else "step",  # (a wait's deadline)
            eta=eta,
            queue=step.queue,
            time_limit=step.timeout if step.type is not StepType.WAIT else None,
            index=index,
            rated=step.rate_limit is not None,
            celery_task=step.task,
            task_id=task_id(execution_id, step.name, attempt, index),
        )


def task_id(execution_id: str, step: str, attempt: int, index: int | None = None) -> str:
    """The broker task id of a step attempt (of a map item): readable, and stable across
    re-publishing."""
    if index is not None:
        return f"{execution_id}:{step}[{index}]:{attempt}"
    return f"{execution_id}:{step}:{attempt}"


class Dispatcher(Protocol):
    def dispatch(self, items: Sequence[Dispatch]) -> None:
        """Publish every item; raise if the broker cannot be reached."""
        ...

    def revoke(self, task_ids: Sequence[str], terminate: bool) -> None:
        """Ask workers to drop these tasks, and to stop them if running when ``terminate``."""
        ...


class NullDispatcher:
    """Publishes nothing: for processes that only read, and for tests of the store."""

    def __init__(self) -> None:
        self.dispatched: list[Dispatch] = []
        self.revoked: list[tuple[str, bool]] = []

    def dispatch(self, items: Sequence[Dispatch]) -> None:
        self.dispatched.extend(items)

    def revoke(self, task_ids: Sequence[str], terminate: bool) -> None:
        self.revoked.extend((task, terminate) for task in task_ids)
