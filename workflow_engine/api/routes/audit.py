"""GET /audit: refused requests and failed logins, newest first (admins)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool

from workflow_engine.api.deps import EngineDep, User
from workflow_engine.api.schemas import AuditOut, ErrorOut

router = APIRouter(prefix="/audit", tags=["auth"])
ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorOut} for code in (401, 403, 422)}


@router.get("", response_model=list[AuditOut], responses=ERRORS)
async def audit(
    user: User, engine: EngineDep, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> list[AuditOut]:
    """Failed logins and refused requests (401, 403): when, who, from where, which route."""
    user.require("admin")
    return [AuditOut.model_validate(r) for r in await run_in_threadpool(engine.audit.recent, limit)]
