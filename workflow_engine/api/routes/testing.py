"""A registered version's own cases: POST /testing/runs runs them here, GET keeps the result."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path

from workflow_engine.api.deps import WRITERS, EngineDep, User
from workflow_engine.api.schemas import CasesRequest, CasesRunOut, ErrorOut
from workflow_engine.store.test_runs import TestRunRecord

router = APIRouter(prefix="/testing", tags=["testing"])
ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorOut} for code in (401, 403, 404, 422, 429)}


def _out(run: TestRunRecord) -> CasesRunOut:
    return CasesRunOut.model_validate(
        {
            "id": run.id,
            "workflow": run.workflow_name,
            "version": run.workflow_version,
            "passed": run.passed,
            "failed": run.failed,
            "seconds": run.seconds,
            "created_at": run.created_at,
            "cases": run.cases,
        }
    )


@router.post("/runs", status_code=201, response_model=CasesRunOut, responses=ERRORS)
def run(user: User, engine: EngineDep, body: CasesRequest) -> CasesRunOut:
    """Run the version's cases in process (agents mocked as each case says, time virtual), within
    the deployment's limits for test runs (time, items, runs at once), and keep the result."""
    user.require(*WRITERS)
    return _out(engine.run_cases(body.workflow, body.version, user.user_id, user.owner_filter))


@router.get("/runs/{run_id}", response_model=CasesRunOut, responses=ERRORS)
def show(user: User, engine: EngineDep, run_id: Annotated[int, Path(ge=1, le=2**62)]) -> CasesRunOut:
    return _out(engine.cases_run(run_id, user.owner_filter))
