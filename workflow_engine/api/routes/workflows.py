"""Workflow definitions: register versions (their agents checked), list them, read one, delete
one that never ran."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Path, Query, Response
from fastapi.responses import JSONResponse

from workflow_engine import versions
from workflow_engine.api.deps import WRITERS, EngineDep, User, start_for
from workflow_engine.api.schemas import ErrorOut, ExecuteRequest, Started, WorkflowOut, WorkflowVersionOut
from workflow_engine.errors import WorkflowNotFound
from workflow_engine.store.records import WorkflowRecord

router = APIRouter(prefix="/workflows", tags=["workflows"])
NAME = Path(min_length=1, max_length=100)
ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorOut} for code in (401, 403, 404, 409, 422)}


def _summary(records: list[WorkflowRecord], with_definition: bool = False) -> WorkflowOut:
    latest = records[0]  # newest version first
    return WorkflowOut(
        name=latest.name,
        description=latest.description,
        latest_version=latest.version,
        versions=[r.version for r in records],
        definition=latest.document if with_definition else None,
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
def list_workflows(user: User, engine: EngineDep) -> list[WorkflowOut]:
    """Workflows visible to the caller, with their versions, newest first."""
    by_name: dict[str, list[WorkflowRecord]] = {}
    for record in engine.workflows(visible_to=user.owner_filter):
        by_name.setdefault(record.name, []).append(record)
    return [_summary(records) for records in by_name.values()]


@router.get("/{name}", response_model=WorkflowOut, responses=ERRORS)
def get_workflow(user: User, engine: EngineDep, name: str = NAME) -> WorkflowOut:
    records = engine.workflows(visible_to=user.owner_filter, name=name)
    if not records:
        raise WorkflowNotFound(name)
    return _summary(records, with_definition=True)


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
