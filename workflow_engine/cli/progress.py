"""Live progress of an execution in the terminal, followed through its event history."""

from __future__ import annotations

import time
from collections.abc import Callable

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from workflow_engine.core.states import SETTLED_EXECUTION
from workflow_engine.engine import Engine
from workflow_engine.store.records import EventRecord
from workflow_engine.views import ExecutionView

STYLES = {
    "succeeded": "green",
    "completed": "green",
    "failed": "red",
    "cancelled": "red",
    "waiting": "yellow",
    "retrying": "yellow",
    "running": "cyan",
    "skipped": "dim",
}


def describe(event: EventRecord) -> str:
    index = (event.details or {}).get("index") if isinstance(event.details, dict) else None
    item = "" if index is None else f"[{index}]"
    subject = f"step {event.step_name}{item}" if event.step_name else "execution"
    attempt = f" (attempt {event.attempt})" if event.step_name and event.attempt and event.attempt > 1 else ""
    style = STYLES.get(event.to_status, "")
    status = f"[{style}]{event.to_status}[/]" if style else event.to_status
    reason = f": {event.reason}" if event.reason else ""
    return f"{event.created_at:%H:%M:%S} {subject}{attempt} {status}{reason}"


def follow(
    engine: Engine,
    execution_id: str,
    console: Console,
    timeout: float | None = None,
    still_running: Callable[[], str | None] | None = None,
) -> ExecutionView:
    """Print each transition as it happens, with a progress bar, until the execution settles.

    ``still_running`` reports a reason to stop early (a worker that died), or None.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    problem: list[str] = []

    def stopped() -> bool:
        reason = still_running() if still_running else None
        if reason:
            problem.append(reason)
        return bool(reason) or (deadline is not None and time.monotonic() > deadline)

    columns = (TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        bar = progress.add_task(execution_id[:8], total=100)
        for event in engine.follow(execution_id, settled=True, stopped=stopped):
            console.print(describe(event))
            view = engine.get(execution_id, include_steps=False)
            progress.update(bar, completed=view.percent_complete)
    if problem:
        raise RuntimeError(problem[0])
    final = engine.get(execution_id)
    if final.status not in SETTLED_EXECUTION:
        raise TimeoutError(f"execution {execution_id} is still {final.status} after {timeout}s")
    return final


def summary(view: ExecutionView) -> Table:
    style = STYLES.get(view.status, "")
    title = f"{view.workflow} {view.version}: [{style}]{view.status}[/] ({view.percent_complete:g}%)"
    if view.reason:
        title += f": {view.reason}"
    table = Table(title=title, title_justify="left")
    for column in ("step", "type", "status", "attempts", "duration", "error"):
        table.add_column(column)
    for step in view.steps:
        duration = f"{step.duration_ms / 1000:.2f}s" if step.duration_ms is not None else ""
        error = f"{step.error['type']}: {step.error['message']}" if step.error else ""
        colour = STYLES.get(step.status, "")
        status = f"[{colour}]{step.status}[/]" if colour else step.status
        if step.items is not None:
            counts = step.items
            status += f" {counts['done']}/{counts['total']} done"
            status += f", {counts['failed']} failed" if counts["failed"] else ""
            status += f", {counts['running']} running" if counts["running"] else ""
        table.add_row(
            step.name,
            step.type,
            status,
            str(step.attempts),
            duration,
            error,
        )
    if view.parent_execution_id:
        index = "" if view.parent_index is None else f"[{view.parent_index}]"
        table.caption = f"child of {view.parent_execution_id}, step {view.parent_step}{index}"
    elif view.children:
        table.caption = f"{len(view.children)} child execution(s): wfe list --parent {view.id}"
    return table
