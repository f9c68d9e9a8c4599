"""One place that turns engine errors into HTTP answers: status from the error's kind, and a
JSON body ``{"detail": ...}`` (with ``problems`` when there is a list of them)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from workflow_engine import errors

log = logging.getLogger(__name__)

STATUS: list[tuple[type[Exception], int]] = [
    (errors.TooManyAttempts, 429),
    (errors.AuthenticationFailed, 401),
    (errors.PermissionDenied, 403),
    (errors.NotFound, 404),
    (errors.Conflict, 409),
    (errors.DefinitionError, 422),
    (errors.InputError, 422),
    (errors.ExpressionError, 422),
    (errors.StoreError, 503),
    (errors.ConfigurationError, 500),
]


def status_of(error: Exception) -> int:
    for kind, status in STATUS:
        if isinstance(error, kind):
            return status
    return 500


def body_of(error: Exception) -> dict[str, Any]:
    body: dict[str, Any] = {"detail": str(error)}
    problems = getattr(error, "problems", None)
    if problems:
        body["problems"] = [{"location": p.location, "message": p.message} for p in problems]
    return body


async def _audit(request: Request, status: int) -> None:
    """Record a refused request: who (if known), from where, which route."""
    audit = request.app.state.engine.audit
    username = getattr(request.state, "username", None)
    address = request.client.host if request.client else "unknown"
    route = f"{request.method} {request.url.path}"
    await run_in_threadpool(audit.record, username, address, route, status)


def install(app: FastAPI) -> None:
    @app.exception_handler(errors.WorkflowEngineError)
    async def engine_error(request: Request, error: errors.WorkflowEngineError) -> JSONResponse:
        status = status_of(error)
        if status in (401, 403):
            await _audit(request, status)
        if status >= 500:
            log.error("%s %s failed: %s", request.method, request.url.path, error)
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        if isinstance(error, errors.TooManyAttempts):
            headers = {"Retry-After": str(error.retry_after)}
        return JSONResponse(body_of(error), status_code=status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        detail = [
            {"loc": list(item.get("loc", ())), "msg": item.get("msg", ""), "type": item.get("type", "")}
            for item in error.errors()
        ]
        return JSONResponse({"detail": detail}, status_code=422)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        log.exception("%s %s failed", request.method, request.url.path)
        return JSONResponse({"detail": "internal error"}, status_code=500)
