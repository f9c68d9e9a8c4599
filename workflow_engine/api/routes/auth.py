"""POST /auth/token, /auth/refresh, /auth/logout and /auth/logout-all."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import pydantic
from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from workflow_engine import users
from workflow_engine.api.auth import TokenPair, Tokens
from workflow_engine.api.deps import EngineDep, TokensDep, User, active_user
from workflow_engine.api.limits import body_kind
from workflow_engine.api.schemas import Credentials, RefreshRequest, TokenOut
from workflow_engine.engine import Engine
from workflow_engine.errors import AuthenticationFailed, InputError, Problem, TooManyAttempts
from workflow_engine.users import LoginBrake

router = APIRouter(prefix="/auth", tags=["auth"])

_FORM = "application/x-www-form-urlencoded"
SLOT_WAIT = 2.0  # seconds a login waits for a password-hashing slot before it is refused
_TOKEN_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": Credentials.model_json_schema()},
            _FORM: {
                "schema": {
                    "type": "object",
                    "required": ["username", "password"],
                    "properties": {
                        "grant_type": {"type": "string", "enum": ["password"]},
                        "username": {"type": "string"},
                        "password": {"type": "string"},
                    },
                }
            },
        },
    }
}


def _out(pair: TokenPair) -> TokenOut:
    return TokenOut(
        access_token=pair.access_token, refresh_token=pair.refresh_token, expires_in=pair.expires_in
    )


async def _credentials(request: Request) -> Credentials:
    """Credentials from an OAuth2 password form or a JSON body."""
    raw: Any
    if body_kind(request.headers.get("content-type", "")) != "json":
        form = await request.form()
        raw = {key: form.get(key) for key in ("username", "password")}
        grant = form.get("grant_type")
        if grant not in (None, "", "password"):
            raise InputError("credentials", [Problem("grant_type", "only 'password' is supported")])
    else:  # read as JSON whatever it is labelled, as the request limits check it
        try:
            raw = json.loads(await request.body() or b"null")
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise InputError("credentials", [Problem("body", "not valid JSON")]) from None
    try:
        return Credentials.model_validate(raw)
    except pydantic.ValidationError as exc:
        problems = [Problem(".".join(str(p) for p in e["loc"]) or "body", e["msg"]) for e in exc.errors()]
        raise InputError("credentials", problems) from None


@router.post("/token", response_model=TokenOut, openapi_extra=_TOKEN_BODY)
async def token(request: Request, engine: EngineDep, tokens: TokensDep) -> TokenOut:
    """Exchange a username and password for an access token and a refresh token."""
    credentials = await _credentials(request)
    request.state.username = credentials.username  # (a refused login is audited under it)
    logins: LoginBrake = request.app.state.logins
    hashing: anyio.Semaphore = request.app.state.hashing
    address = request.client.host if request.client else "unknown"
    attempt = await run_in_threadpool(logins.admit, credentials.username, address)
    # an admitted login waits for a hashing slot on the event loop, holding no thread meanwhile
    with anyio.move_on_after(SLOT_WAIT) as waited:
        await hashing.acquire()
    if waited.cancelled_caught:
        await run_in_threadpool(logins.withdraw, attempt)
        raise TooManyAttempts("too many logins at once; try again", 1)
    try:
        user = await run_in_threadpool(logins.verify, attempt, credentials.username, credentials.password)
    finally:
        hashing.release()
    generation = await run_in_threadpool(users.generation, engine.store, user.id)
    return _out(tokens.issue(user, generation))


@router.post("/refresh", response_model=TokenOut)
async def refresh(body: RefreshRequest, engine: EngineDep, tokens: TokensDep) -> TokenOut:
    """A new token pair for a valid refresh token, which is spent: it is refused from then on
    (as is one revoked by a logout). A spent one presented again revokes every token descended
    from the same login: the thief's and the owner's alike (the owner logs in again)."""
    claims = tokens.verify(body.refresh_token, "refresh")
    user = await active_user(engine, claims)
    await _spend(engine, tokens, claims, user.id, "refreshed")
    return _out(tokens.issue(user, int(claims.get("gen", 0)), claims.get("fam")))


@router.post("/logout", status_code=204)
async def logout(body: RefreshRequest, engine: EngineDep, tokens: TokensDep) -> Response:
    """Revoke a refresh token: it is refused from then on (access tokens expire on their own)."""
    claims = tokens.verify(body.refresh_token, "refresh")
    with contextlib.suppress(AuthenticationFailed):  # revoked already: nothing more to do
        await _spend(engine, tokens, claims, int(claims["sub"]), "revoked")
    return Response(status_code=204)


@router.post("/logout-all", status_code=204)
async def logout_all(user: User, engine: EngineDep) -> Response:
    """Log out everywhere: every access and refresh token of the caller, this one included, is
    refused from now on."""
    await run_in_threadpool(users.revoke_tokens, engine.store, user.username, user.username)
    return Response(status_code=204)


async def _spend(engine: Engine, tokens: Tokens, claims: dict[str, Any], user_id: int, reason: str) -> None:
    jti, expires = claims.get("jti"), claims.get("exp")
    if not isinstance(jti, str) or not 0 < len(jti) <= 64 or not isinstance(expires, int):
        raise AuthenticationFailed("invalid token")
    expires_at = datetime.fromtimestamp(expires, UTC)
    now = tokens.clock.now()
    spent = await run_in_threadpool(engine.audit.spend, jti, user_id, reason, expires_at, now)
    if not spent:
        family = claims.get("fam")
        if isinstance(family, str):  # a spent token came back: its whole login goes
            until = now + timedelta(seconds=tokens.refresh_ttl)
            await run_in_threadpool(users.revoke_family, engine.store, family, user_id, until)
        raise AuthenticationFailed("refresh token already used or revoked")
