"""The monitor's session: a refresh token in an HttpOnly, SameSite=Strict cookie scoped to /ui,
checked on every page (signature, expiry, not spent by a logout, the user still active); and a
CSRF token derived from it, which every state-changing request must carry back."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fastapi import Request, Response
from starlette.concurrency import run_in_threadpool

from workflow_engine.api.auth import Principal, Tokens
from workflow_engine.api.deps import active_user
from workflow_engine.engine import Engine
from workflow_engine.errors import AuthenticationFailed, PermissionDenied

COOKIE = "wfe_session"
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"
WRITERS = ("admin", "operator")


@dataclass(frozen=True)
class Session:
    user: Principal
    csrf: str
    claims: dict[str, Any]

    @property
    def may_change(self) -> bool:
        return self.user.role in WRITERS


def csrf_of(tokens: Tokens, jti: str) -> str:
    return hmac.new(tokens.secret.encode(), f"csrf:{jti}".encode(), hashlib.sha256).hexdigest()[:40]


async def session_of(request: Request, engine: Engine, tokens: Tokens) -> Session:
    """The caller's session; :class:`AuthenticationFailed` without a valid one."""
    token = request.cookies.get(COOKIE)
    if not token:
        raise AuthenticationFailed("not signed in")
    claims = tokens.verify(token, "refresh")
    jti = claims.get("jti")
    if not isinstance(jti, str) or await run_in_threadpool(engine.audit.is_spent, jti):
        raise AuthenticationFailed("signed out")
    user = await active_user(engine, claims)
    request.state.username = user.username
    return Session(Principal(user.id, user.username, user.role), csrf_of(tokens, jti), claims)


async def check_csrf(request: Request, session: Session) -> dict[str, str]:
    """The posted form, once its CSRF token (field or header) is the session's."""
    form = await request.form()
    values = {key: value for key, value in form.items() if isinstance(value, str)}
    sent = request.headers.get(CSRF_HEADER) or values.get(CSRF_FIELD, "")
    if not hmac.compare_digest(sent, session.csrf):
        raise PermissionDenied("the form's CSRF token is missing or stale; reload the page")
    return values


def open_session(response: Response, request: Request, refresh_token: str, max_age: int) -> None:
    response.set_cookie(
        COOKIE,
        refresh_token,
        max_age=max_age,
        path="/ui",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


async def close_session(response: Response, engine: Engine, session: Session) -> None:
    """Spend the session's token (refused from then on) and drop the cookie."""
    claims = session.claims
    expires = datetime.fromtimestamp(int(claims["exp"]), UTC)
    await run_in_threadpool(
        engine.audit.spend, claims["jti"], session.user.user_id, "revoked", expires, datetime.now(UTC)
    )
    response.delete_cookie(COOKIE, path="/ui")
