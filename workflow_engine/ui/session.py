"""The monitor's session: a refresh token in an HttpOnly, SameSite=Strict cookie scoped to /ui,
checked on every page (signature, expiry, not spent by a logout, the user still active, the
token not revoked); and a CSRF token derived from it, which every state-changing request must
carry back.

Signing in has no session yet: the login form carries a token derived from a random value in a
cookie of its own (HttpOnly, SameSite=Strict, scoped to /ui/login), and the login is refused
unless the form's token is that cookie's and the request comes from the monitor's own origin
(its ``Origin``, or its ``Referer`` when it has no ``Origin``, names the host it was sent to):
another site cannot sign a visitor in as someone else."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from fastapi import Request, Response
from starlette.concurrency import run_in_threadpool

from workflow_engine.api.auth import Principal, Tokens
from workflow_engine.api.deps import active_user
from workflow_engine.engine import Engine
from workflow_engine.errors import AuthenticationFailed, PermissionDenied

COOKIE = "wfe_session"
LOGIN_COOKIE = "wfe_login"
LOGIN_PATH = "/ui/login"
LOGIN_FORM_TTL = 3600  # seconds a login form's cookie lasts
_NONCE = re.compile(r"[A-Za-z0-9_-]{32}")
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


def login_token(tokens: Tokens, nonce: str) -> str:
    return hmac.new(tokens.secret.encode(), f"login:{nonce}".encode(), hashlib.sha256).hexdigest()[:40]


def login_nonce(request: Request) -> str:
    """The login form's random value: the one its cookie holds, else a new one."""
    held = request.cookies.get(LOGIN_COOKIE, "")
    return held if _NONCE.fullmatch(held) else secrets.token_urlsafe(24)


def keep_login_nonce(response: Response, request: Request, nonce: str) -> None:
    response.set_cookie(
        LOGIN_COOKIE,
        nonce,
        max_age=LOGIN_FORM_TTL,
        path=LOGIN_PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def check_login(request: Request, tokens: Tokens, sent: str) -> None:
    """:class:`PermissionDenied` unless the login comes from the monitor's own page: its origin
    is the host it was sent to, and ``sent`` is the token of its login form's cookie."""
    origin = request.headers.get("origin")
    source = origin if origin is not None else request.headers.get("referer")
    host = request.headers.get("host", "")
    if source is None or not host or urlsplit(source).netloc.lower() != host.lower():
        raise PermissionDenied("a sign-in must come from the monitor's own sign-in page")
    nonce = request.cookies.get(LOGIN_COOKIE, "")
    if not _NONCE.fullmatch(nonce) or not hmac.compare_digest(sent, login_token(tokens, nonce)):
        raise PermissionDenied("the sign-in form is missing its token or is stale; reload the page")


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
