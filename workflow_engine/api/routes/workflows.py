"""Workflow definitions: register versions (their agents checked), list them, read one, delete
one that never ran."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Path, Query, Response
from fastapi.responses import JSONResponse

from workflow_engine import versions
from workflow_engine.api.deps import WRITERS, EngineDep, User, start_for
from workflow_engine.api.schemas import ErrorOut, ExecuteRequest, Started, WorkflowOut, WorkflowVersionOut
from workflow_engine.store.catalogue import Order

router = APIRouter(prefix="/workflows", tags=["workflows"])
NAME = Path(min_length=1, max_length=100)
ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorOut} for code in (401, 403, 404, 409, 422)}


def _out(found: versions.WorkflowSummary, definition: dict[str, Any] | None = None) -> WorkflowOut:
    return WorkflowOut(
        name=found.name,
        description=found.description,
        latest_version=found.latest_version,
        versions=found.versions,
        definition=definition,
    )


@router.post("", status_code=201, response_model=WorkflowVersionOut, responses=ERRORS)
def register(
    user: User,
    engine: EngineDep,
    definition: dict[str, Any] = Body(description="A workflow definition (the YAML format, as JSON)"),
    allow_unknown_agents: bool = Query(
        False, description="Register it although no live worker reports one of its agents"
    ),
) -> WorkflowVersionOut:
    """Register a workflow version; (name, version) is immutable once registered. An agent that
    no live worker reports is refused (422, one problem per step naming one) unless
    ``allow_unknown_agents``; while no worker is live, agents are not checked."""
    user.require(*WRITERS)
    record, _ = versions.register(
        engine,
        definition,
        allow_unknown_agents=allow_unknown_agents,
        created_by=user.user_id,
        visible_to=user.owner_filter,
    )
    return WorkflowVersionOut.of(record, with_definition=True)


@router.get("", response_model=list[WorkflowOut], responses=ERRORS)
def list_workflows(
    user: User,
    engine: EngineDep,
    limit: int = Query(100, ge=1, le=versions.MAX_PAGE, description="Workflows per page"),
    offset: int = Query(0, ge=0, le=10_000_000, description="Workflows to skip"),
    order: Order = Query("name", description="by name, or newest: the latest registration first"),
) -> list[WorkflowOut]:
    """One page of the workflows visible to the caller, each with its versions (newest first),
    without their documents (``GET /workflows/{name}/versions/{version}`` gives one)."""
    return [_out(found) for found in versions.listing(engine, user.owner_filter, limit, offset, order)]


@router.get("/{name}", response_model=WorkflowOut, responses=ERRORS)
def get_workflow(user: User, engine: EngineDep, name: str = NAME) -> WorkflowOut:
    """A workflow's versions (newest first) and the latest one's definition."""
    found = versions.summary(engine, name, user.owner_filter)
    latest = engine.workflow(name, found.latest_version, visible_to=user.owner_filter)
    return _out(found, latest.document)


@router.get("/{name}/versions/{version}", response_model=WorkflowVersionOut, responses=ERRORS)
def get_version(
    user: User, engine: EngineDep, name: str = NAME, version: str = Path(min_length=1, max_length=64)
) -> WorkflowVersionOut:
    record = engine.workflow(name, version, visible_to=user.owner_filter)
    return WorkflowVersionOut.of(record, with_definition=True)


@router.delete("/{name}/versions/{version}", status_code=204, responses=ERRORS)
def delete_version(
    user: User, engine: EngineDep, name: str = NAME, version: str = Path(min_length=1, max_length=64)
) -> Response:
    """Delete a version that no execution ever used (409 otherwise, or while a schedule or
    another workflow starts it); its name's owner or an admin only. The (name, version) may be
    registered again, with another body."""
    user.require(*WRITERS)
    versions.delete(engine, name, version, owner_id=user.owner_filter, visible_to=user.owner_filter)
    return Response(status_code=204)


@router.post("/{name}/execute", status_code=202, response_model=Started, responses=ERRORS)
def execute(user: User, engine: EngineDep, body: ExecuteRequest, name: str = NAME) -> JSONResponse:
    """Start an execution of this workflow."""
    return start_for(user, engine, name, body)
