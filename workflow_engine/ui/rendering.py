"""What every page of the monitor shares: its templates, how a page is rendered for a session,
the redirect after a change (with the message it leaves), and the session a request carries.

The message a change leaves for the next page travels in a short-lived cookie the server sets
with the redirect, never in the link: a link from elsewhere cannot put words on the monitor's
pages."""

from __future__ import annotations

import base64
import binascii
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from workflow_engine.api.deps import EngineDep, TokensDep
from workflow_engine.ui import pages
from workflow_engine.ui.session import Session, session_of

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
templates.env.filters["shown"] = pages.shown
FLASH = "wfe_flash"
FLASH_TTL = 60  # seconds the message waits for the next page
MAX_FLASH = 500  # characters


async def current(request: Request, engine: EngineDep, tokens: TokensDep) -> Session:
    return await session_of(request, engine, tokens)


SessionDep = Annotated[Session, Depends(current)]


def render(
    request: Request, name: str, session: Session | None, status: int = 200, **context: Any
) -> Response:
    """The page; the message the last change left (if any) is shown once, whatever else a
    caller passes as ``message``."""
    context["message"] = flash_of(request)
    response = templates.TemplateResponse(
        request, name, {"session": session, "path": request.url.path, **context}, status_code=status
    )
    if FLASH in request.cookies:
        response.delete_cookie(FLASH, path="/ui")
    return response


def back(to: str, **message: str) -> RedirectResponse:
    """A redirect to ``to`` (after a change), leaving ``message`` for the page it lands on."""
    response = RedirectResponse(to, status_code=303)
    text = message.get("message")
    if text:
        encoded = base64.urlsafe_b64encode(text[:MAX_FLASH].encode()).decode()
        response.set_cookie(FLASH, encoded, max_age=FLASH_TTL, path="/ui", httponly=True, samesite="strict")
    return response


def flash_of(request: Request) -> str | None:
    """The message a change left for this page, from its cookie (never from the query string)."""
    held = request.cookies.get(FLASH)
    if not held:
        return None
    try:
        return base64.urlsafe_b64decode(held.encode()).decode()[:MAX_FLASH]
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
