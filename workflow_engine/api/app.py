"""The FastAPI application: every route under /api/v1, docs at /api/docs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from fastapi import APIRouter, FastAPI
from fastapi_offline import FastAPIOffline
from starlette.types import ASGIApp, Receive, Scope, Send

from workflow_engine.api import errors
from workflow_engine.api.auth import Tokens
from workflow_engine.api.headers import SecurityHeaders
from workflow_engine.api.limits import RequestLimits
from workflow_engine.api.routes import (
    audit,
    auth,
    bulk,
    error_groups,
    executions,
    monitoring,
    schedules,
    testing,
    users,
    workflows,
)
from workflow_engine.engine import Engine
from workflow_engine.errors import ConfigurationError
from workflow_engine.metrics import api_registry
from workflow_engine.settings import DEFAULT_JWT_SECRET, EXAMPLE_JWT_SECRET, PLACEHOLDER_MARK, Settings
from workflow_engine.ui import routes as monitor
from workflow_engine.users import LoginBrake

MIN_PRODUCTION_SECRET = 32
DOCS_URL = "/api/docs"
DOCS_ASSETS = "/api/docs/assets"


def is_placeholder(secret: str) -> bool:
    """Whether a secret is one anybody can read: the default, or the example file's placeholder."""
    return secret in (DEFAULT_JWT_SECRET, EXAMPLE_JWT_SECRET) or PLACEHOLDER_MARK in secret.lower()


def check_secret(settings: Settings) -> None:
    """Production refuses a default or placeholder secret, or one too short to resist guessing."""
    if settings.environment != "production":
        return
    secret = settings.jwt_secret.get_secret_value()
    if is_placeholder(secret) or len(secret) < MIN_PRODUCTION_SECRET:
        raise ConfigurationError(
            f"WFE_JWT_SECRET must be set to a secret of at least {MIN_PRODUCTION_SECRET} characters "
            "in production (not the example's placeholder)"
        )
    if settings.metrics_token is not None and is_placeholder(settings.metrics_token.get_secret_value()):
        raise ConfigurationError("WFE_METRICS_TOKEN must be set to a secret of your own in production")


def create_app(settings: Settings | None = None, engine: Engine | None = None) -> FastAPI:
    settings = settings or (engine.settings if engine else Settings())
    check_secret(settings)
    engine = engine or Engine.from_settings(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        engine.close()

    # Swagger UI's script, style sheet and icon come from the installed fastapi-offline
    # package, served under DOCS_ASSETS: the docs work with no internet access
    app = FastAPIOffline(
        lifespan=lifespan,
        title="Workflow Engine",
        version="1",
        docs_url=DOCS_URL,
        redoc_url=None,
        openapi_url="/api/openapi.json",
        static_url=DOCS_ASSETS,
        swagger_ui_oauth2_redirect_url=f"{DOCS_URL}/oauth2-redirect",
        # never a redirect to the same path with a slash added: it would be built from the Host
        # header, which the client chooses
        redirect_slashes=False,
        description="Versioned DAG workflows run on Celery, durable in the database.",
    )
    app.state.engine = engine
    app.state.tokens = Tokens(settings)
    app.state.logins = LoginBrake(engine.store, settings)
    # at most this many password hashes are checked at once (each takes a core for about 50 ms)
    app.state.hashing = anyio.Semaphore(settings.login_hashing_slots)
    app.state.registry = api_registry(engine.store)
    errors.install(app)
    api = APIRouter(prefix="/api/v1")
    for module in (auth, audit, workflows, bulk, executions, schedules, error_groups, testing, monitoring):
        api.include_router(module.router)
    api.include_router(users.router)
    app.include_router(api)
    app.include_router(monitoring.router, include_in_schema=False)  # /health and /metrics at the root too
    monitor.install(app)  # the web monitor at /ui
    app.add_middleware(RequestLimits, max_bytes=settings.max_request_bytes)
    app.add_middleware(TrailingSlash)
    # outermost: every answer carries them (Swagger UI's inline start-up script allowed by hash)
    app.add_middleware(SecurityHeaders, hashed_paths=(DOCS_URL, f"{DOCS_URL}/oauth2-redirect"))
    return app


class TrailingSlash:
    """Pure ASGI middleware: serves ``/path/`` as ``/path``. Never a redirect to the other
    spelling: its location would be built from the Host header, which the client chooses."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] in ("http", "websocket") and len(path) > 1 and path.endswith("/"):
            scope = {**scope, "path": path.rstrip("/") or "/"}
            raw = scope.get("raw_path")
            if raw:
                scope["raw_path"] = raw.rstrip(b"/") or b"/"
        await self.app(scope, receive, send)
