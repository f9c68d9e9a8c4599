"""Dependencies shared by the routes: the engine, and who is calling (checked in one place)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from workflow_engine.api.auth import Principal, Tokens
from workflow_engine.api.schemas import ExecuteRequest, Started
from workflow_engine.engine import Engine
from workflow_engine.errors import AuthenticationFailed
from workflow_engine.store.records import UserRecord
from workflow_engine.users import token_user

bearer = HTTPBearer(auto_error=False, description="An access token from POST /api/v1/auth/token")


def engine_of(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def tokens_of(request: Request) -> Tokens:
    tokens: Tokens = request.app.state.tokens
    return tokens


EngineDep = Annotated[Engine, Depends(engine_of)]
TokensDep = Annotated[Tokens, Depends(tokens_of)]


async def current_user(
    request: Request,
    engine: EngineDep,
    tokens: TokensDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    """The caller of a valid access token whose user still exists and is active."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise AuthenticationFailed("missing bearer token")
    claims = tokens.verify(credentials.credentials, "access")
    user = await active_user(engine, claims)
    request.state.username = user.username  # (a refused request is audited under it)
    return Principal(user.id, user.username, user.role)


async def active_user(engine: Engine, claims: dict[str, Any]) -> UserRecord:
    """The user a verified token names, if it still exists and is active, and the token was not
    revoked since (see :func:`workflow_engine.users.token_user`)."""
    return await run_in_threadpool(token_user, engine.store, claims)


User = Annotated[Principal, Depends(current_user)]
WRITERS = ("admin", "operator")


def start_for(user: Principal, engine: Engine, workflow: str, body: ExecuteRequest) -> JSONResponse:
    """Start ``workflow`` for ``user``: 202 with the execution's id and status."""
    user.require(*WRITERS)
    view = engine.start(
        workflow,
        body.input_data,
        body.metadata,
        version=body.version,
        idempotency_key=body.idempotency_key,
        mode=body.mode,
        owner_id=user.user_id,
        actor=user.username,
        visible_to=user.owner_filter,
    )
    return JSONResponse(Started(execution_id=view.id, status=view.status).model_dump(), status_code=202)
