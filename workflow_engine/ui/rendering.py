"""What every page of the monitor shares: its templates, how a page is rendered for a session,
the redirect after a change, and the session a request carries."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Depends, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from workflow_engine.api.deps import EngineDep, TokensDep
from workflow_engine.ui import pages
from workflow_engine.ui.session import Session, session_of

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
templates.env.filters["shown"] = pages.shown


async def current(request: Request, engine: EngineDep, tokens: TokensDep) -> Session:
    return await session_of(request, engine, tokens)


SessionDep = Annotated[Session, Depends(current)]


def render(
    request: Request, name: str, session: Session | None, status: int = 200, **context: Any
) -> Response:
    return templates.TemplateResponse(
        request, name, {"session": session, "path": request.url.path, **context}, status_code=status
    )


def back(to: str, **message: str) -> RedirectResponse:
    return RedirectResponse(f"{to}?{urlencode(message)}" if message else to, status_code=303)
