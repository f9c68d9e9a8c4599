"""Executions: start, list, read, logs, control, human tasks, and live events."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, Path, Query
from fastapi.responses import JSONResponse
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import AfterValidator
from starlette.concurrency import run_in_threadpool

from workflow_engine.api import streams
from workflow_engine.api.deps import WRITERS, EngineDep, User, start_for
from workflow_engine.api.schemas import (
    CancelRequest,
    CompleteRequest,
    ErrorOut,
    EventOut,
    ExecutionListOut,
    ExecutionOut,
    HumanTaskOut,
    LogOut,
    MigrateRequest,
    RetryRequest,
    SignalRequest,
    Started,
    StartRequest,
)
from workflow_engine.core.states import ExecutionStatus
from workflow_engine.definitions.model import StepType
from workflow_engine.engine import Engine
from workflow_engine.store.listing import ExecutionQuery

router = APIRouter(tags=["executions"])
ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorOut} for code in (401, 403, 404, 409, 422)}
ExecutionId = Annotated[str, Path(min_length=1, max_length=36)]
MAX_EVENT_ID = 2**63 - 1  # event ids are signed 64-bit integers in both stores


def as_utc(value: datetime | None) -> datetime | None:
    """An aware UTC time; a naive one (or a bare date) is taken as UTC."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("timestamp out of range once converted to UTC") from None


Timestamp = Annotated[
    datetime | None,
    AfterValidator(as_utc),
    Query(description="ISO 8601 date or date-time; one without a time zone is taken as UTC"),
]


@router.post("/executions", status_code=202, response_model=Started, responses=ERRORS)
def start(user: User, engine: EngineDep, body: StartRequest) -> JSONResponse:
    """Start an execution; its input is checked against the workflow's input schema first."""
    return start_for(user, engine, body.workflow, body)


@router.get("/executions", response_model=ExecutionListOut, responses=ERRORS)
def list_executions(
    user: User,
    engine: EngineDep,
    workflow: Annotated[str | None, Query(max_length=100)] = None,
    status: ExecutionStatus | None = None,
    created_after: Timestamp = None,
    created_before: Timestamp = None,
    parent: Annotated[str | None, Query(max_length=36, description="children of this execution")] = None,
    ids: Annotated[
        str | None, Query(max_length=37_000, description="only these executions: comma-separated ids")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> ExecutionListOut:
    """Executions, newest first, with the total that match."""
    query = ExecutionQuery(
        owner_id=user.owner_filter,
        workflow=workflow,
        status=status.value if status else None,
        created_after=created_after,
        created_before=created_before,
        parent=parent,
        ids=tuple(i.strip() for i in ids.split(",") if i.strip()) if ids is not None else None,
        limit=limit,
        offset=offset,
    )
    views, total = engine.executions(query)
    return ExecutionListOut(
        total=total, limit=limit, offset=offset, items=[ExecutionOut.of(v) for v in views]
    )


@router.get("/executions/{execution_id}", response_model=ExecutionOut, responses=ERRORS)
def get_execution(
    user: User,
    engine: EngineDep,
    execution_id: ExecutionId,
    include_steps: bool = True,
    include_events: bool = False,
) -> ExecutionOut:
    view = engine.get(execution_id, user.owner_filter, include_steps=include_steps)
    events = engine.history(execution_id, owner_id=user.owner_filter) if include_events else None
    return ExecutionOut.of(view, events)


@router.get("/executions/{execution_id}/logs", response_model=list[LogOut], responses=ERRORS)
def logs(
    user: User,
    engine: EngineDep,
    execution_id: ExecutionId,
    step_name: Annotated[str | None, Query(max_length=100)] = None,
    step_type: StepType | None = None,
    has_error: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    index: Annotated[int | None, Query(ge=0, description="a map step's item")] = None,
) -> list[LogOut]:
    """Every attempt of every step (and of each map item, with its index), chronological."""
    entries = engine.logs(
        execution_id, step_name, step_type, has_error, limit, owner_id=user.owner_filter, index=index
    )
    return [LogOut.model_validate(entry) for entry in entries]


def _control(user: User, engine: Engine, execution_id: str, verb: str, **kwargs: Any) -> ExecutionOut:
    user.require(*WRITERS)
    action = getattr(engine, verb)
    view = action(execution_id, actor=user.username, owner_id=user.owner_filter, **kwargs)
    return ExecutionOut.of(view)


@router.post("/executions/{execution_id}/cancel", response_model=ExecutionOut, responses=ERRORS)
def cancel(
    user: User, engine: EngineDep, execution_id: ExecutionId, body: CancelRequest | None = Body(default=None)
) -> ExecutionOut:
    """Cancel: nothing more is dispatched, queued tasks are revoked, running ones stopped."""
    return _control(user, engine, execution_id, "cancel", reason=body.reason if body else None)


@router.post("/executions/{execution_id}/pause", response_model=ExecutionOut, responses=ERRORS)
def pause(user: User, engine: EngineDep, execution_id: ExecutionId) -> ExecutionOut:
    """Pause: no new step starts; running steps finish and are recorded."""
    return _control(user, engine, execution_id, "pause")


@router.post("/executions/{execution_id}/resume", response_model=ExecutionOut, responses=ERRORS)
def resume(user: User, engine: EngineDep, execution_id: ExecutionId) -> ExecutionOut:
    return _control(user, engine, execution_id, "resume")


@router.post("/executions/{execution_id}/next-step", response_model=ExecutionOut, responses=ERRORS)
def next_step(user: User, engine: EngineDep, execution_id: ExecutionId) -> ExecutionOut:
    """Step mode: dispatch the next ready step."""
    return _control(user, engine, execution_id, "next_step")


@router.post("/executions/{execution_id}/retry", response_model=ExecutionOut, responses=ERRORS)
def retry(
    user: User, engine: EngineDep, execution_id: ExecutionId, body: RetryRequest | None = Body(default=None)
) -> ExecutionOut:
    """Run the failed step (or ``from_step``) and everything after it again."""
    return _control(user, engine, execution_id, "retry", from_step=body.from_step if body else None)


@router.post("/executions/{execution_id}/migrate", response_model=ExecutionOut, responses=ERRORS)
def migrate(user: User, engine: EngineDep, execution_id: ExecutionId, body: MigrateRequest) -> ExecutionOut:
    """Move the execution to another version of its workflow: refused (409) unless every step
    it has run or is running is there with the same type."""
    return _control(user, engine, execution_id, "migrate", version=body.version)


@router.post(
    "/executions/{execution_id}/steps/{step}/complete", response_model=ExecutionOut, responses=ERRORS
)
def complete(
    user: User,
    engine: EngineDep,
    execution_id: ExecutionId,
    body: CompleteRequest,
    step: Annotated[str, Path(min_length=1, max_length=100)],
) -> ExecutionOut:
    """Complete a human task (or a step waiting for a fix) with data; invalid data changes nothing."""
    user.require(*WRITERS)
    view = engine.complete_human_task(
        execution_id, step, body.data, user_id=user.username, role=user.role, owner_id=user.owner_filter
    )
    return ExecutionOut.of(view)


@router.post("/executions/{execution_id}/signals/{name}", response_model=ExecutionOut, responses=ERRORS)
def signal(
    user: User,
    engine: EngineDep,
    execution_id: ExecutionId,
    body: SignalRequest,
    name: Annotated[str, Path(min_length=1, max_length=100)],
) -> ExecutionOut:
    """Send a signal with data: the wait step waiting for it takes it, or it is kept until one is
    reached. Data its step's schema refuses changes nothing (422); an ended execution takes no
    signal (409)."""
    user.require(*WRITERS)
    view = engine.signal(execution_id, name, body.data, user_id=user.username, owner_id=user.owner_filter)
    return ExecutionOut.of(view)


@router.get("/human-tasks", response_model=list[HumanTaskOut], responses=ERRORS)
def human_tasks(
    user: User, engine: EngineDep, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> list[HumanTaskOut]:
    """Steps waiting for a person: open human tasks and steps waiting for a fix."""
    return [HumanTaskOut.model_validate(task) for task in engine.human_tasks(user.owner_filter, limit)]


async def visible_execution(user: User, engine: EngineDep, execution_id: ExecutionId) -> str:
    """The execution id, once the caller is known to see it (checked before a stream starts)."""
    await run_in_threadpool(engine.store.get_execution, execution_id, user.owner_filter)
    return execution_id


@router.get(
    "/executions/{execution_id}/events",
    response_class=EventSourceResponse,
    responses={200: {"content": {"text/event-stream": {}}}, **ERRORS},
)
async def events(
    engine: EngineDep,
    execution_id: Annotated[str, Depends(visible_execution)],
    last_event_id: Annotated[
        int | None,
        Header(ge=0, le=MAX_EVENT_ID, description="Resume after this event id (the last one received)"),
    ] = None,
) -> AsyncIterator[ServerSentEvent]:
    """Server-sent events: the history so far, then each transition live, until the end."""
    record = await run_in_threadpool(engine.store.get_execution, execution_id)
    link = {} if record.parent_execution_id is None else {"parent_execution_id": record.parent_execution_id}
    async for batch in streams.batches(engine, execution_id, last_event_id or 0):
        for event in batch.events:
            yield ServerSentEvent(
                data={**EventOut.of(event).model_dump(mode="json"), **link},
                event="transition",
                id=str(event.id),
            )
        if batch.done:
            yield ServerSentEvent(
                data={"execution_id": execution_id, "status": batch.status, **link}, event="end"
            )
        elif not batch.events:
            yield ServerSentEvent(comment="keep-alive")
