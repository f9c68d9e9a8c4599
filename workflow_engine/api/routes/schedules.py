"""Schedules: create, list, read, pause, resume, trigger, delete. Operators own theirs, as
executions: another user's schedule answers 404. A name is unique among its owner's schedules
only, and a route that names one looks it up among the caller's; an admin names another user's
with ``?owner=USERNAME`` (the deployment's, made by ``wfe schedule``: ``?owner=system``)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response

from workflow_engine.api.auth import Principal
from workflow_engine.api.deps import WRITERS, EngineDep, User
from workflow_engine.api.schemas import ErrorOut, FiredOut, ScheduleRequest
from workflow_engine.api.schemas_schedules import ScheduleViewOut
from workflow_engine.engine import Engine
from workflow_engine.errors import ScheduleNotFound, UserNotFound
from workflow_engine.schedules import ScheduleView

router = APIRouter(prefix="/schedules", tags=["schedules"])
ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorOut} for code in (401, 403, 404, 409, 422)}
Name = Annotated[str, Path(min_length=1, max_length=100)]
Owner = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=150,
        description="An admin's: the username whose schedule NAME is (default: the caller's own)",
    ),
]


def _owner(user: Principal, engine: Engine, name: str, owner: str | None) -> int:
    """Whose schedules ``name`` is looked up among: the caller's, or for an admin ``owner``'s;
    another user's (or an unknown user's) is not found, as any schedule the caller cannot see."""
    if owner is None or owner == user.username:
        return user.user_id
    if not user.is_admin:
        raise ScheduleNotFound(name)
    try:
        return engine.store.get_user(owner).id
    except UserNotFound:
        raise ScheduleNotFound(name) from None


def _out(view: ScheduleView) -> ScheduleViewOut:
    return ScheduleViewOut.model_validate(asdict(view))


@router.post("", status_code=201, response_model=ScheduleViewOut, responses=ERRORS)
def create(user: User, engine: EngineDep, body: ScheduleRequest) -> ScheduleViewOut:
    """Create a schedule: a workflow started on a cron expression or every N seconds."""
    user.require(*WRITERS)
    options = body.model_dump(exclude={"name", "workflow"})
    view = engine.schedules.create(
        body.name, body.workflow, **options, owner_id=user.user_id, actor=user.username
    )
    return _out(view)


@router.get("", response_model=list[ScheduleViewOut], responses=ERRORS)
def list_schedules(user: User, engine: EngineDep) -> list[ScheduleViewOut]:
    """The caller's schedules (an admin's: everyone's, each with its owner), by name."""
    return [_out(view) for view in engine.schedules.list(user.owner_filter)]


@router.get("/{name}", response_model=ScheduleViewOut, responses=ERRORS)
def show(user: User, engine: EngineDep, name: Name, owner: Owner = None) -> ScheduleViewOut:
    """A schedule, its next five fire times, its last executions, the fire times that started
    nothing (with why) and its changes."""
    return _out(engine.schedules.get(name, _owner(user, engine, name, owner)))


@router.delete("/{name}", status_code=204, responses=ERRORS)
def delete(user: User, engine: EngineDep, name: Name, owner: Owner = None) -> Response:
    """Delete a schedule; the executions it started stay."""
    user.require(*WRITERS)
    engine.schedules.delete(name, _owner(user, engine, name, owner), actor=user.username)
    return Response(status_code=204)


@router.post("/{name}/pause", response_model=ScheduleViewOut, responses=ERRORS)
def pause(user: User, engine: EngineDep, name: Name, owner: Owner = None) -> ScheduleViewOut:
    """No fire time starts anything until resumed."""
    user.require(*WRITERS)
    return _out(engine.schedules.pause(name, _owner(user, engine, name, owner), actor=user.username))


@router.post("/{name}/resume", response_model=ScheduleViewOut, responses=ERRORS)
def resume(user: User, engine: EngineDep, name: Name, owner: Owner = None) -> ScheduleViewOut:
    """Fire again from now on (fire times that fell while paused are not caught up)."""
    user.require(*WRITERS)
    return _out(engine.schedules.resume(name, _owner(user, engine, name, owner), actor=user.username))


@router.post("/{name}/trigger", status_code=202, response_model=FiredOut, responses=ERRORS)
def trigger(user: User, engine: EngineDep, name: Name, owner: Owner = None) -> FiredOut:
    """Fire now, under the schedule's overlap policy: what it did, and the execution it started."""
    user.require(*WRITERS)
    fired = engine.schedules.trigger(name, _owner(user, engine, name, owner), actor=user.username)
    return FiredOut(
        schedule=name,
        scheduled_at=fired.fire_time,
        action=fired.action,
        execution_id=fired.execution_id,
        error=fired.error,
    )
