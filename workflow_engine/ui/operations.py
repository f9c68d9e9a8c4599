"""The monitor's pages for operators beside the executions: human tasks (and completing them),
schedules, error groups, workers and their queues."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from workflow_engine.api.deps import EngineDep
from workflow_engine.engine import Engine
from workflow_engine.errors import Conflict, InputError, NotFound, PermissionDenied
from workflow_engine.ui import pages
from workflow_engine.ui.rendering import SessionDep, back, render
from workflow_engine.ui.session import Session, check_csrf
from workflow_engine.worker.nodes import nodes

router = APIRouter(prefix="/ui", include_in_schema=False)


@router.get("/human-tasks", response_class=HTMLResponse)
def human_tasks(request: Request, engine: EngineDep, session: SessionDep) -> Response:
    return _tasks_page(request, engine, session)


def _tasks_page(
    request: Request, engine: Engine, session: Session, status: int = 200, **context: Any
) -> Response:
    tasks = engine.human_tasks(session.user.owner_filter, 200)
    forms = {(t.execution_id, t.step): pages.form_fields(t.input_schema) for t in tasks}
    return render(request, "human_tasks.html", session, status, tasks=tasks, forms=forms, **context)


@router.post("/human-tasks/{execution_id}/{step}")
async def complete(
    request: Request, engine: EngineDep, session: SessionDep, execution_id: str, step: str
) -> Response:
    form = await check_csrf(request, session)
    session.user.require("admin", "operator")
    tasks = engine.human_tasks(session.user.owner_filter, 200)
    task = next((t for t in tasks if t.execution_id == execution_id and t.step == step), None)
    if task is None:
        raise NotFound(f"no open task {step!r} of execution {execution_id}")
    data, problem = pages.form_data(pages.form_fields(task.input_schema), form)
    if problem is None:
        try:
            await run_in_threadpool(
                engine.complete_human_task,
                execution_id,
                step,
                data,
                session.user.username,
                session.user.role,
                session.user.owner_filter,
            )
        except (InputError, Conflict, PermissionDenied) as exc:
            problem = str(exc)
    if problem is not None:
        return _tasks_page(request, engine, session, 422, refused={(execution_id, step): problem}, sent=form)
    return back("/ui/human-tasks", message=f"{step} of {execution_id[:8]} completed")


@router.get("/schedules", response_class=HTMLResponse)
def schedules(request: Request, engine: EngineDep, session: SessionDep) -> Response:
    return render(
        request, "schedules.html", session, schedules=engine.schedules.list(session.user.owner_filter)
    )


@router.get("/errors", response_class=HTMLResponse)
def error_groups(request: Request, engine: EngineDep, session: SessionDep) -> Response:
    return render(
        request, "errors.html", session, groups=engine.errors.list(owner_id=session.user.owner_filter)
    )


@router.get("/workers", response_class=HTMLResponse)
def workers(request: Request, engine: EngineDep, session: SessionDep) -> Response:
    found = nodes(engine.store.workers(), engine.store.clock.now(), 3 * engine.settings.heartbeat_interval)
    consumed = {queue for node in found if node.live for queue in node.queues}
    queues = sorted({engine.settings.steps_queue, *(q for node in found for q in node.queues)})
    depths: dict[str, int | None] | None = None
    broker_problem = None
    measure = getattr(engine.dispatcher, "depths", None)  # (a dispatcher that is no broker has none)
    if measure is not None:
        try:
            depths = measure(queues)
        except Exception as exc:  # the page still shows the workers
            broker_problem = f"the broker did not answer: {exc}"
    return render(
        request,
        "workers.html",
        session,
        nodes=found,
        queues=[(q, q in consumed, depths.get(q) if depths else None) for q in queues],
        broker_problem=broker_problem,
    )
