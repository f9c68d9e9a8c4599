"""Error groups: GET /errors, GET /errors/{group}, POST /errors/{group}/retry."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from workflow_engine.api.deps import WRITERS, EngineDep, User
from workflow_engine.api.schemas import BulkOut, ErrorGroupOut, ErrorOut
from workflow_engine.core.retention import parse_age
from workflow_engine.error_groups import ErrorGroup
from workflow_engine.errors import InputError, Problem

router = APIRouter(prefix="/errors", tags=["errors"])
ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorOut} for code in (401, 403, 404, 422)}
Since = Annotated[str, Query(max_length=20, description="how far back: 24h, 7d, 30m")]
Group = Annotated[str, Path(min_length=1, max_length=64)]


def _since(text: str) -> Any:
    try:
        return parse_age(text)
    except ValueError as exc:
        raise InputError("since", [Problem("", str(exc))]) from None


def _out(group: ErrorGroup) -> ErrorGroupOut:
    return ErrorGroupOut.model_validate(
        {k: v for k, v in asdict(group).items() if k != "failed_execution_ids"}
    )


@router.get("", response_model=list[ErrorGroupOut], responses=ERRORS)
def list_groups(user: User, engine: EngineDep, since: Since = "24h") -> list[ErrorGroupOut]:
    """Failed attempts within ``since``, grouped; the most frequent first."""
    return [_out(g) for g in engine.errors.list(_since(since), user.owner_filter)]


@router.get("/{group}", response_model=ErrorGroupOut, responses=ERRORS)
def show(user: User, engine: EngineDep, group: Group, since: Since = "24h") -> ErrorGroupOut:
    return _out(engine.errors.get(group, _since(since), user.owner_filter))


@router.post("/{group}/retry", response_model=BulkOut, responses=ERRORS)
def retry(user: User, engine: EngineDep, group: Group, since: Since = "24h") -> BulkOut:
    """Retry every failed execution of the group from its failed step, each in its own
    recorded transition."""
    user.require(*WRITERS)
    result = engine.errors.retry(group, actor=user.username, owner_id=user.owner_filter, since=_since(since))
    return BulkOut(**result.as_dict())
