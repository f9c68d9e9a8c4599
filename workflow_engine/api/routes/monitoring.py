"""Health and metrics."""

from __future__ import annotations

import hmac
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from workflow_engine.api.deps import EngineDep, TokensDep, User, bearer, current_user
from workflow_engine.api.schemas import ErrorOut
from workflow_engine.errors import PermissionDenied
from workflow_engine.monitoring import summary
from workflow_engine.store import reports

router = APIRouter(tags=["monitoring"])
ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorOut} for code in (401, 403, 422)}


@router.get("/health")
def health(engine: EngineDep) -> JSONResponse:
    """Liveness and database reachability; no token needed."""
    try:
        reports.reachable(engine.store)
        database = "ok"
    except Exception as exc:
        database = f"unavailable: {type(exc).__name__}"
    status = 200 if database == "ok" else 503
    return JSONResponse(
        {"status": "ok" if status == 200 else "degraded", "database": database}, status_code=status
    )


@router.get("/monitoring/metrics", responses=ERRORS)
def metrics_json(
    user: User, engine: EngineDep, window: Annotated[int, Query(ge=1, le=366 * 86400)] = 3600
) -> dict[str, Any]:
    """Executions by status, step durations by agent and errors by type over the last ``window`` s."""
    since = engine.store.clock.now() - timedelta(seconds=window)
    return summary(engine.store, since, user.owner_filter)


async def metrics_reader(
    request: Request,
    engine: EngineDep,
    tokens: TokensDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> None:
    """An admin's access token, or the static scrape token (WFE_METRICS_TOKEN)."""
    static = engine.settings.metrics_token
    if (
        credentials is not None
        and static is not None
        and hmac.compare_digest(credentials.credentials.encode(), static.get_secret_value().encode())
    ):
        return
    principal = await current_user(request, engine, tokens, credentials)
    if not principal.is_admin:
        raise PermissionDenied("Prometheus metrics are for admins and the scrape token")


@router.get("/metrics", dependencies=[Depends(metrics_reader)], responses=ERRORS)
def metrics_prometheus(request: Request) -> Response:
    """Prometheus exposition format."""
    registry = request.app.state.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
