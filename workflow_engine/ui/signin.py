"""The sign-in link of `wfe dev`: a random secret made for one run of it, which opens a monitor
session for the local admin. Only an app created with a link has the route; `wfe api` never does.
"""

from __future__ import annotations

import hmac
import secrets

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from workflow_engine import users
from workflow_engine.api.auth import Tokens
from workflow_engine.engine import Engine
from workflow_engine.errors import NotFound
from workflow_engine.ui.session import open_session

PATH = "/ui/sign-in"


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def install(app: FastAPI, username: str, secret: str) -> None:
    """``GET /ui/sign-in/{secret}`` signs ``username`` in to the monitor while this app runs."""

    @app.get(f"{PATH}/{{given}}", include_in_schema=False)
    async def sign_in(request: Request, given: str) -> Response:
        if not hmac.compare_digest(given.encode(), secret.encode()):
            raise NotFound("no such page")
        engine: Engine = request.app.state.engine
        tokens: Tokens = request.app.state.tokens
        user = await run_in_threadpool(engine.store.get_user, username)
        generation = await run_in_threadpool(users.generation, engine.store, user.id)
        response = RedirectResponse("/ui/executions", status_code=303)
        open_session(response, request, tokens.issue(user, generation).refresh_token, tokens.refresh_ttl)
        return response
