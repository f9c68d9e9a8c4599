"""Live progress of an execution in the terminal, followed through its event history.

Everything shown is built as rich ``Text`` with styles, never as markup: names, reasons and
error messages are printed as they are, whatever brackets they hold."""

from __future__ import annotations

import time
from collections.abc import Callable

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from workflow_engine.core.states import SETTLED_EXECUTION, ExecutionStatus, StepStatus
from workflow_engine.engine import Engine
from workflow_engine.store.records import EventRecord
from workflow_engine.views import ExecutionView

E = ExecutionStatus
S = StepStatus

# every execution and step status has its colour (a test checks that none is missing)
STYLES: dict[str, str] = {
    E.INITIALIZED: "dim",
    E.RUNNING: "cyan",
    E.WAITING: "yellow",
    E.PAUSED: "magenta",
    E.RESUMED: "cyan",
    E.COMPLETED: "green",
    E.FAILED: "red",
    E.CANCELLED: "red",
    S.PENDING: "dim",
    S.QUEUED: "blue",
    S.RUNNING: "cyan",
    S.RETRYING: "yellow",
    S.WAITING: "yellow",
    S.SUCCEEDED: "green",
    S.FAILED: "red",
    S.SKIPPED: "dim",
    S.CANCELLED: "red",
}


def styled(status: str) -> Text:
    """A status in its colour (one the engine does not know, plain)."""
    return Text(status, style=STYLES.get(status, ""))


def event_line(event: EventRecord) -> Text:
    """The line the progress prints for an event: when, what (the execution or a step), the status
    it reached and why."""
    index = (event.details or {}).get("index") if isinstance(event.details, dict) else None
    item = "" if index is None else f"[{index}]"
    subject = f"step {event.step_name}{item}" if event.step_name else "execution"
    attempt = f" (attempt {event.attempt})" if event.step_name and event.attempt and event.attempt > 1 else ""
    line = Text(f"{event.created_at:%H:%M:%S} {subject}{attempt} ")
    line.append_text(styled(event.to_status))
    if event.reason:
        line.append(f": {event.reason}")
    return line


def follow(
    engine: Engine,
    execution_id: str,
    console: Console,
    timeout: float | None = None,
    still_running: Callable[[], str | None] | None = None,
    stopped: Callable[[], bool] = lambda: False,
) -> ExecutionView:
    """Print each transition as it happens, with a progress bar, until the execution settles
    (or until ``stopped()``: then it is returned as it is).

    ``still_running`` reports a reason to stop early (a worker that died), or None.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    problem: list[str] = []

    def given_up() -> bool:
        if stopped():
            return True
        reason = still_running() if still_running else None
        if reason:
            problem.append(reason)
        return bool(reason) or (deadline is not None and time.monotonic() > deadline)

    columns = (TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        bar = progress.add_task(execution_id[:8], total=100)
        for event in engine.follow(execution_id, settled=True, stopped=given_up):
            console.print(event_line(event))
            view = engine.get(execution_id, include_steps=False)
            progress.update(bar, completed=view.percent_complete)
            if stopped():
                break
    if problem:
        raise RuntimeError(problem[0])
    final = engine.get(execution_id)
    if final.status not in SETTLED_EXECUTION and not stopped():
        raise TimeoutError(f"execution {execution_id} is still {final.status} after {timeout}s")
    return final


def summary(view: ExecutionView) -> Table:
    title = Text(f"{view.workflow} {view.version}: ")
    title.append_text(styled(view.status))
    title.append(f" ({view.percent_complete:g}%)")
    table = Table(title=title, title_justify="left")
    for column in ("step", "type", "status", "attempts", "duration", "error"):
        table.add_column(column)
    for step in view.steps:
        duration = f"{step.duration_ms / 1000:.2f}s" if step.duration_ms is not None else ""
        error = f"{step.error['type']}: {step.error['message']}" if step.error else ""
        status = styled(step.status)
        if step.items is not None:
            counts = step.items
            status.append(f" {counts['done']}/{counts['total']} done")
            status.append(f", {counts['failed']} failed" if counts["failed"] else "")
            status.append(f", {counts['running']} running" if counts["running"] else "")
        table.add_row(Text(step.name), Text(step.type), status, str(step.attempts), duration, Text(error))
    if view.parent_execution_id:
        index = "" if view.parent_index is None else f"[{view.parent_index}]"
        table.caption = Text(f"child of {view.parent_execution_id}, step {view.parent_step}{index}")
    elif view.children:
        table.caption = Text(f"{len(view.children)} child execution(s): wfe list --parent {view.id}")
    return table


def reason_line(view: ExecutionView) -> Text | None:
    """Why the execution is not running, as the monitor says it (None when nothing holds it)."""
    return Text(f"why: {view.reason}", style="yellow") if view.reason else None
