"""The values passed between a worker and the coordinator about one step attempt."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from workflow_engine.core.retry import FailureKind
from workflow_engine.definitions.model import StepDefinition, WorkflowDefinition
from workflow_engine.store.records import ExecutionRecord, StepRunRecord


@dataclass(frozen=True, slots=True)
class Claim:
    """A step attempt a worker now owns, with everything its agent's context needs."""

    run_id: int
    execution_id: str
    workflow: str
    version: str
    workflow_id: int
    step: StepDefinition
    attempt: int
    input: dict[str, Any]
    metadata: dict[str, Any]
    checkpoint: Any
    worker: str
    retries: int
    due_at: datetime  # when it could have started: queued, or the end of its backoff
    started_at: datetime
    # for a step run in place: the execution's row as the outcome before it left it
    execution: ExecutionRecord | None = None
    # the joins a success of the step only counts toward, with their in-degrees (see
    # core.planner.arrival_joins); None when its success may make a step ready
    joins: Mapping[str, int] | None = None
    # whether the worker recording it hands on a carried sibling (see delivery.take_carried): the
    # step is a branch of a fan-out, some of whose branches may be carried (delivery.conclude)
    carrier: bool = False
    # a map step's item: its position, and the item (ctx.index, ctx.item)
    index: int | None = None
    item: Any = None
    # of a child's step run in place by the worker that started the child: the parent's row as
    # that worker wrote it, and the parent's run that waits for the child (see Unit.parent)
    parent: tuple[ExecutionRecord, StepRunRecord] | None = None
    # the workflow the step belongs to (None only where a test builds a claim by hand)
    definition: WorkflowDefinition | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Success:
    output: dict[str, Any]
    duration_ms: int


@dataclass(frozen=True, slots=True)
class Failure:
    kind: FailureKind
    error_type: str
    message: str
    duration_ms: int
    code: str | None = None
    retry_in: float | None = None  # seconds before the next attempt, as the agent asked
    # what the agent raised, for the worker's report of the attempt (its traceback): never stored
    cause: BaseException | None = field(default=None, compare=False, repr=False)
    # the secret texts the attempt was given: hidden in its traceback too
    hidden: tuple[str, ...] = field(default=(), compare=False, repr=False)

    def as_error(self, step: str) -> dict[str, Any]:
        return {"step": step, "type": self.error_type, "message": self.message, "code": self.code}


Outcome = Success | Failure


@dataclass(frozen=True, slots=True)
class Finished:
    """What became of an attempt (succeeded, retrying, waiting, failed, discarded), and the next
    step's attempt when the worker is to run it in place."""

    result: str
    next: Claim | None = None
