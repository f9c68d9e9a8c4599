"""The monitor at /ui: server-rendered pages for the same users and roles as the API, its
session in a cookie, every change posted with a CSRF token, live through server-sent events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Annotated, Any, cast
from urllib.parse import urlencode

import anyio
from fastapi import APIRouter, Depends, FastAPI, Header, Path, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.sse import EventSourceResponse, ServerSentEvent
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from workflow_engine import reasons, users
from workflow_engine.api import streams
from workflow_engine.api.auth import Tokens
from workflow_engine.api.deps import EngineDep, TokensDep
from workflow_engine.core.retention import parse_age
from workflow_engine.core.states import ExecutionStatus
from workflow_engine.engine import MAX_CHILDREN_SHOWN, Engine
from workflow_engine.errors import (
    AuthenticationFailed,
    Conflict,
    NotFound,
    PermissionDenied,
    StepNotFound,
    TooManyAttempts,
    WorkflowEngineError,
)
from workflow_engine.store import activity, listing, reports
from workflow_engine.store.listing import ExecutionQuery
from workflow_engine.ui import operations, pages
from workflow_engine.ui.rendering import HERE, SessionDep, back, render
from workflow_engine.ui.session import (
    CSRF_FIELD,
    LOGIN_COOKIE,
    LOGIN_PATH,
    Session,
    check_csrf,
    check_login,
    close_session,
    keep_login_nonce,
    login_nonce,
    login_token,
    open_session,
)
from workflow_engine.users import LoginBrake
from workflow_engine.views import attempt_input, execution_view, readable

router = APIRouter(prefix="/ui", include_in_schema=False)
PAGE = 50
COUNTED = 10_000  # (the list counts each status up to this: "10,000+" above it)
ACTIONS = ("cancel", "pause", "resume", "retry", "next")
STATUSES = [s.value for s in ExecutionStatus if s != ExecutionStatus.RESUMED]
LARGEST = 2**63 - 1  # (the largest id or page a query may name: beyond it, 422, not a database error)


# signing in and out


@router.get("")
def home() -> RedirectResponse:
    return RedirectResponse("/ui/executions", status_code=303)


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, tokens: TokensDep, next: str = "/ui/executions") -> Response:
    return _login_form(request, tokens, 200, next=_local(next))


def _login_form(request: Request, tokens: Tokens, status: int, **context: Any) -> Response:
    """The sign-in page, its form's token bound to the random value of its own cookie."""
    nonce = login_nonce(request)
    response = render(request, "login.html", None, status, login_csrf=login_token(tokens, nonce), **context)
    keep_login_nonce(response, request, nonce)
    return response


@router.post("/login")
async def login(request: Request, engine: EngineDep, tokens: TokensDep) -> Response:
    form = await request.form()
    username, password = str(form.get("username") or ""), str(form.get("password") or "")
    target = _local(str(form.get("next") or "/ui/executions"))
    request.state.username = username
    address = request.client.host if request.client else "unknown"
    try:
        check_login(request, tokens, str(form.get(CSRF_FIELD) or ""))
    except PermissionDenied as exc:  # (another site's form: refused before any password is checked)
        await run_in_threadpool(engine.audit.record, username or None, address, "POST /ui/login", 403)
        return _login_form(request, tokens, 403, error=str(exc), next=target)
    if not username or not password:
        return _login_form(request, tokens, 422, error="give a username and a password", next=target)
    logins: LoginBrake = request.app.state.logins
    hashing: anyio.Semaphore = request.app.state.hashing
    try:
        attempt = await run_in_threadpool(logins.admit, username, address)
        async with hashing:
            user = await run_in_threadpool(logins.verify, attempt, username, password)
    except TooManyAttempts as exc:
        return _login_form(request, tokens, 429, error=str(exc), next=target)
    except AuthenticationFailed:
        return _login_form(request, tokens, 401, error="wrong username or password", next=target)
    generation = await run_in_threadpool(users.generation, engine.store, user.id)
    response = RedirectResponse(target, status_code=303)
    open_session(response, request, tokens.issue(user, generation).refresh_token, tokens.refresh_ttl)
    response.delete_cookie(LOGIN_COOKIE, path=LOGIN_PATH)
    return response


@router.post("/logout")
async def logout(request: Request, engine: EngineDep, session: SessionDep) -> Response:
    await check_csrf(request, session)
    response = RedirectResponse("/ui/login", status_code=303)
    await close_session(response, engine, session)
    return response


def _local(target: str) -> str:
    """Only a path of the monitor's own: never a redirect elsewhere."""
    return (
        target
        if target.startswith("/ui/") and "//" not in target and "\\" not in target
        else "/ui/executions"
    )


# executions


@dataclass(frozen=True)
class Filters:
    """The list's filters, from its query string."""

    workflow: Annotated[str | None, Query(max_length=100)] = None
    status: Annotated[str | None, Query(max_length=20)] = None
    q: Annotated[str | None, Query(max_length=100)] = None
    since: Annotated[str | None, Query(max_length=10)] = None
    after: Annotated[str | None, Query(max_length=80)] = None


FiltersDep = Annotated[Filters, Depends()]


@router.get("/executions", response_class=HTMLResponse)
def executions(request: Request, engine: EngineDep, session: SessionDep, filters: FiltersDep) -> Response:
    # read before the rows: the page's change stream follows from here
    last_event = _newest_event(engine, session.user.owner_filter)
    return _listing(request, engine, session, "executions.html", filters, last_event=last_event)


def _newest_event(engine: Engine, owner_id: int | None) -> int:
    """The newest event the list of ``owner_id``'s executions follows from (None: everyone's)."""
    if owner_id is None:
        return engine.store.last_event_id()
    with engine.store.reading() as db:
        return activity.newest_event(db, owner_id)


@router.get("/executions/rows", response_class=HTMLResponse)
def execution_rows(request: Request, engine: EngineDep, session: SessionDep, filters: FiltersDep) -> Response:
    """The list's counts and rows, for the page to swap in when executions change."""
    return _listing(request, engine, session, "executions_live.html", filters)


@router.get("/executions/changes", response_class=EventSourceResponse)
async def list_changes(
    engine: EngineDep,
    session: SessionDep,
    from_event: Annotated[int | None, Query(ge=0, le=LARGEST)] = None,
) -> AsyncIterator[ServerSentEvent]:
    """A `changed` event, at most one a second, when the history of an execution the list shows
    grows (the list then fetches its rows anew: one cheap read a poll, a page's reads only on a
    change): any execution's for an admin, else the user's own (their stream tells nothing of
    others'). ``from_event`` is the last event before the page's rows were read: a change between
    the page's read and this stream's start is a change too."""
    owner = session.user.owner_filter
    latest = await run_in_threadpool(partial(_newest_event, engine, owner))
    seen = from_event if from_event is not None else latest
    mark = await run_in_threadpool(engine.store.last_event_id)  # (the owner's are looked for after it)
    quiet = 0.0
    while True:
        await asyncio.sleep(1.0)
        if owner is None:
            latest = await run_in_threadpool(engine.store.last_event_id)
        else:
            mark, mine = await run_in_threadpool(_changed_since, engine, owner, mark)
            latest = mine if mine is not None else latest
        if latest != seen:
            seen, quiet = latest, 0.0
            yield ServerSentEvent(data={"last": latest}, event="changed", id=str(latest))
        else:
            quiet += 1.0
            if quiet >= streams.KEEPALIVE_SECONDS:
                quiet = 0.0
                yield ServerSentEvent(comment="keep-alive")


def _listing(
    request: Request,
    engine: Engine,
    session: Session,
    template: str,
    filters: Filters,
    last_event: int | None = None,
) -> Response:
    workflow, status, q, since, after = (
        filters.workflow,
        filters.status,
        filters.q,
        filters.since,
        filters.after,
    )
    age = _age(since)
    query = ExecutionQuery(
        owner_id=session.user.owner_filter,
        workflow=workflow or None,
        status=status if status in STATUSES else None,
        created_after=engine.store.clock.now() - age if age is not None else None,
        text=q or None,
        after=_cursor(after),
        limit=PAGE + 1,
    )
    with engine.store.reading() as conn:
        records, _ = listing.page(conn, query, count=False)
    more = len(records) > PAGE
    records = records[:PAGE]
    counts = reports.executions_by_status_upto(
        engine.store, STATUSES, COUNTED, session.user.owner_filter, workflow or None
    )
    cursor = f"{records[-1].created_at.isoformat()}|{records[-1].id}" if more and records else None
    chosen = {k: v for k, v in {"workflow": workflow, "status": status, "q": q, "since": since}.items() if v}
    return render(
        request,
        template,
        session,
        records=records,
        counts=counts,
        counted=COUNTED,
        statuses=STATUSES,
        filters=chosen,
        live_query=urlencode({**chosen, **({"after": after} if after else {})}),
        last_event=last_event,
        next_page=f"?{urlencode({**chosen, 'after': cursor})}" if cursor else None,
        first_page=bool(after),
    )


def _age(since: str | None) -> timedelta | None:
    if not since:
        return None
    try:
        return parse_age(since)
    except ValueError:
        return None


def _cursor(after: str | None) -> tuple[datetime, str] | None:
    """A page's keyset cursor, ``<created_at ISO>|<id>`` (a malformed one: the first page)."""
    if not after or "|" not in after:
        return None
    stamp, _, last_id = after.partition("|")
    try:
        created = datetime.fromisoformat(stamp)
    except ValueError:
        return None
    return (created, last_id) if created.tzinfo is not None else None


@router.post("/executions/bulk")
async def bulk(request: Request, engine: EngineDep, session: SessionDep) -> Response:
    form = await check_csrf(request, session)
    session.user.require("admin", "operator")
    verb = form.get("verb", "")
    ids = tuple((await request.form()).getlist("ids"))
    ids = tuple(str(i) for i in ids if isinstance(i, str))[:PAGE]  # (at most a page is shown)
    if not ids:
        return back("/ui/executions", message="choose executions first")
    result = await run_in_threadpool(
        engine.bulk.apply,
        verb,
        ExecutionQuery(ids=ids),
        session.user.username,
        session.user.owner_filter,
    )
    return back("/ui/executions", message=f"{verb}: {result.changed} changed, {result.refused} refused")


@dataclass(frozen=True)
class Shown:
    """Which part of each long list of an execution's page is shown, from its query string:
    the page of map items and of steps, and the history older than an event (0: the newest)."""

    items: Annotated[int, Query(ge=0, le=LARGEST)] = 0
    steps: Annotated[int, Query(ge=0, le=LARGEST)] = 0
    history: Annotated[int, Query(ge=0, le=LARGEST)] = 0

    def query(self, **changed: int) -> str:
        """This view's query string, with ``changed`` (the links that page one list keep the others)."""
        chosen = {**{"items": self.items, "steps": self.steps, "history": self.history}, **changed}
        return urlencode({name: value for name, value in chosen.items() if value})


ShownDep = Annotated[Shown, Depends()]


@router.get("/executions/{execution_id}", response_class=HTMLResponse)
def execution(
    request: Request, engine: EngineDep, session: SessionDep, execution_id: str, shown: ShownDep
) -> Response:
    return _execution(request, engine, session, execution_id, shown, "execution.html")


@router.get("/executions/{execution_id}/live", response_class=HTMLResponse)
def live(
    request: Request, engine: EngineDep, session: SessionDep, execution_id: str, shown: ShownDep
) -> Response:
    """The parts of the execution page that change, for the page to swap in."""
    return _execution(request, engine, session, execution_id, shown, "execution_live.html")


def _execution(
    request: Request, engine: Engine, session: Session, execution_id: str, shown: Shown, template: str
) -> Response:
    page = _page(engine, session, execution_id, shown.history or None)
    steps, step_pages = pages.step_page(page.view.steps, shown.steps)
    return render(
        request,
        template,
        session,
        page=page,
        steps={"shown": steps, "page": max(0, min(shown.steps, step_pages - 1)), "pages": step_pages},
        shown=shown,
        state=shown.query(),
        history_page=pages.HISTORY,
        **_items(engine, page, execution_id, shown.items),
    )


@router.get("/executions/{execution_id}/attempts/{run_id}")
def attempt(
    engine: EngineDep, session: SessionDep, execution_id: str, run_id: Annotated[int, Path(ge=0, le=LARGEST)]
) -> Response:
    """One attempt's whole input, output and error, which the page shows cut when they are long."""
    record = engine.store.get_execution(execution_id, session.user.owner_filter)  # (another's: not found)
    run = engine.store.step_run(execution_id, run_id)
    if run is None:
        raise StepNotFound(f"attempt {run_id}")
    error = {"type": run.error_type, "code": run.error_code, "message": run.error_message}
    return JSONResponse(
        {
            "step": run.step_name,
            "attempt": run.attempt,
            "index": run.item_index,
            "status": run.status,
            "input": readable(attempt_input(run, record.input)),
            "output": readable(run.output),
            "error": error if run.error_type else None,
        }
    )


def _page(engine: Engine, session: Session, execution_id: str, before: int | None) -> pages.ExecutionPage:
    store = engine.store
    # the history is read before the state it leads to (each read is its own snapshot): the page
    # follows it from its newest event, so a change committed between the reads is sent to the
    # page again rather than never (the execution is not shown unless it is the user's: below)
    newest = store.last_event_id() if before is not None else None
    events = store.latest_events(execution_id, pages.HISTORY, before)
    record = store.get_execution(execution_id, session.user.owner_filter)
    definition = engine.coordinator.definitions.get(record.workflow_id)
    runs = store.step_runs(execution_id)
    children = store.children(execution_id, limit=MAX_CHILDREN_SHOWN) if definition.children else []
    view = execution_view(record, definition, runs, children)
    now = store.clock.now()
    queues = reasons.live_queues(store.workers(), now, 3 * engine.settings.heartbeat_interval)
    return pages.execution_page(
        record,
        view,
        definition,
        runs,
        events,
        queues,
        engine.settings.steps_queue,
        now,
        engine.settings.flower_url,
        newest,
    )


def _items(engine: Engine, page: pages.ExecutionPage, execution_id: str, index: int) -> dict[str, Any]:
    """A page of the map items (the same range of indices of every map of the execution), and
    how many pages the largest map fills."""
    totals = {step.name: step.items["total"] for step in page.view.steps if step.items}
    if not totals:
        return {"items": None}
    count = max(1, -(-max(totals.values()) // pages.ITEMS_PAGE))
    page_number = max(0, min(index, count - 1))
    shown = reports.item_runs(
        engine.store, execution_id, list(totals), page_number * pages.ITEMS_PAGE, pages.ITEMS_PAGE
    )
    return {"items": {"runs": shown, "page": page_number, "pages": count, "total": sum(totals.values())}}


@router.post("/executions/{execution_id}/{action}")
async def act(
    request: Request, engine: EngineDep, session: SessionDep, execution_id: str, action: str
) -> Response:
    await check_csrf(request, session)
    if action not in ACTIONS:
        raise NotFound(f"no action {action!r}")
    session.user.require("admin", "operator")
    user = session.user
    verbs = {
        "cancel": lambda: engine.cancel(
            execution_id, "cancelled in the monitor", actor=user.username, owner_id=user.owner_filter
        ),
        "pause": lambda: engine.pause(execution_id, user.username, user.owner_filter),
        "resume": lambda: engine.resume(execution_id, user.username, user.owner_filter),
        "retry": lambda: engine.retry(execution_id, actor=user.username, owner_id=user.owner_filter),
        "next": lambda: engine.next_step(execution_id, user.username, user.owner_filter),
    }
    where = f"/ui/executions/{execution_id}"
    try:
        await run_in_threadpool(verbs[action])
    except Conflict as exc:
        return back(where, message=f"{action} refused: {exc}")
    return back(where, message=f"{action}: done")


async def visible(engine: EngineDep, session: SessionDep, execution_id: str) -> str:
    """The execution id, once the caller is known to see it (checked before a stream starts)."""
    await run_in_threadpool(engine.store.get_execution, execution_id, session.user.owner_filter)
    return execution_id


@router.get("/executions/{execution_id}/events", response_class=EventSourceResponse)
async def events(
    engine: EngineDep,
    execution_id: Annotated[str, Depends(visible)],
    after: Annotated[int, Query(ge=0, le=LARGEST)] = 0,
    last_event_id: Annotated[int | None, Header(ge=0, le=LARGEST)] = None,
) -> AsyncIterator[ServerSentEvent]:
    """A `changed` event each time the execution's history grows (resuming after
    ``Last-Event-ID``): the page then fetches what it shows anew."""
    async for batch in streams.batches(engine, execution_id, max(after, last_event_id or 0)):
        if batch.events:
            yield ServerSentEvent(
                data={"events": len(batch.events)}, event="changed", id=str(batch.events[-1].id)
            )
        if batch.done:
            yield ServerSentEvent(data={"status": batch.status}, event="end")
        elif not batch.events:
            yield ServerSentEvent(comment="keep-alive")


def _changed_since(engine: Engine, owner_id: int, mark: int) -> tuple[int, int | None]:
    with engine.store.reading() as db:
        return activity.changed_since(db, owner_id, mark)


# people's tasks, schedules, error groups, workers


def install(app: FastAPI) -> None:
    """Serve the monitor and its assets; its errors are pages (a sign-in for a missing session)."""
    app.include_router(router)
    app.include_router(operations.router)
    app.mount("/ui/static", StaticFiles(directory=HERE / "static"), name="ui-static")
    json_errors: Any = app.exception_handlers[WorkflowEngineError]

    async def handler(request: Request, error: Exception) -> Response:
        if not request.url.path.startswith("/ui"):
            return cast(Response, await json_errors(request, error))
        if isinstance(error, AuthenticationFailed):
            if request.method == "GET" and not request.url.path.endswith("/events"):
                return RedirectResponse(f"/ui/login?{urlencode({'next': request.url.path})}", status_code=303)
            return render(request, "error.html", None, 401, title="Sign in again", detail=str(error))
        if isinstance(error, PermissionDenied):
            await run_in_threadpool(
                request.app.state.engine.audit.record,
                getattr(request.state, "username", None),
                request.client.host if request.client else "unknown",
                request.url.path,
                403,
            )
            return render(request, "error.html", None, 403, title="Not allowed", detail=str(error))
        if isinstance(error, NotFound):
            return render(request, "error.html", None, 404, title="Not found", detail=str(error))
        return cast(Response, await json_errors(request, error))

    app.add_exception_handler(WorkflowEngineError, handler)
