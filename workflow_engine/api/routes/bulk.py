"""Bulk actions by filter: POST /executions/bulk/{cancel|retry|pause|resume}. Registered before
the routes of one execution, so that "bulk" is never taken for an execution id."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter

from workflow_engine.api.deps import WRITERS, EngineDep, User
from workflow_engine.api.routes.executions import as_utc
from workflow_engine.api.schemas import BulkOut, BulkRequest, ErrorOut
from workflow_engine.store.listing import ExecutionQuery

router = APIRouter(tags=["executions"])
ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorOut} for code in (401, 403, 422)}


@router.post("/executions/bulk/{verb}", response_model=BulkOut, responses=ERRORS)
def bulk(
    user: User, engine: EngineDep, verb: Literal["cancel", "retry", "pause", "resume"], body: BulkRequest
) -> BulkOut:
    """Apply ``verb`` to every execution the filters match that the caller may control, each in
    its own transition recorded with the caller; ``dry_run`` counts how many would change."""
    user.require(*WRITERS)
    query = ExecutionQuery(
        workflow=body.workflow,
        status=body.status.value if body.status else None,
        created_after=as_utc(body.created_after),
        created_before=as_utc(body.created_before),
        ids=tuple(body.ids) if body.ids is not None else None,
    )
    result = engine.bulk.apply(
        verb, query, actor=user.username, owner_id=user.owner_filter, dry_run=body.dry_run, reason=body.reason
    )
    return BulkOut(**result.as_dict())
