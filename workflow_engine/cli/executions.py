"""`wfe run`, `submit`, `status`, `watch`, `list`, `logs`, and the control verbs.

Every command that takes an execution id takes a unique prefix of it too (8 characters or
more). Ctrl-C during `wfe run` detaches: the run stops following and stops the worker and
coordinator it started, and says how to follow or cancel the execution; a second Ctrl-C while
it stops them cancels the execution."""

from __future__ import annotations

import contextlib
import json
import os
import signal as signals
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from workflow_engine.agents import REGISTRY, load_modules
from workflow_engine.api.limits import NUL_DETAIL, body_has_nul, json_body_problem
from workflow_engine.cli.output import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_WAITING,
    console,
    error_console,
    importable_cwd,
    json_option,
    print_json,
)
from workflow_engine.cli.progress import follow, reason_line, styled, summary
from workflow_engine.core.states import SETTLED_EXECUTION, ExecutionStatus
from workflow_engine.definitions.loader import load_file
from workflow_engine.definitions.model import StepType
from workflow_engine.definitions.validation import unknown_agents
from workflow_engine.engine import Engine
from workflow_engine.errors import DefinitionError, InputError, InvalidTransition, Problem
from workflow_engine.processes import LocalCluster, Process
from workflow_engine.settings import Settings
from workflow_engine.store.listing import ExecutionQuery
from workflow_engine.views import ExecutionView, timestamp

EXIT_BY_STATUS = {
    ExecutionStatus.COMPLETED: EXIT_OK,
    ExecutionStatus.WAITING: EXIT_WAITING,
    ExecutionStatus.FAILED: EXIT_FAILED,
    ExecutionStatus.CANCELLED: EXIT_FAILED,
}


def parse_json_object(text: str | None, what: str, max_bytes: int | None = None) -> dict[str, Any] | None:
    """``--input '{"a": 1}'`` or ``--input @file.json``: a JSON object, or a clear input error.

    What the REST API refuses in a body is refused here too, by the same checks: more than
    ``max_bytes`` (``WFE_MAX_REQUEST_BYTES``), a key twice in one object, ``NaN`` or
    ``Infinity``, a NUL character, nesting deeper than the engine stores."""
    if text is None:
        return None
    source = text
    if text.startswith("@"):
        try:
            source = Path(text[1:]).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise InputError(what, [Problem(text[1:], reason)]) from None
    raw = source.encode("utf-8", errors="surrogatepass")
    if max_bytes is not None and len(raw) > max_bytes:
        problem = f"larger than {max_bytes} bytes (WFE_MAX_REQUEST_BYTES)"
        raise InputError(what, [Problem("", problem)])
    if body_has_nul(raw, b"application/json"):
        raise InputError(what, [Problem("", NUL_DETAIL)])
    refused = json_body_problem(raw)
    if refused is not None:
        raise InputError(what, [Problem("", refused)])
    try:
        value = json.loads(source)
    except json.JSONDecodeError as exc:
        raise InputError(what, [Problem(f"line {exc.lineno} column {exc.colno}", exc.msg)]) from None
    if not isinstance(value, dict):
        raise InputError(what, [Problem("", "must be a JSON object")])
    return value


def exit_for(view: ExecutionView) -> int:
    return EXIT_BY_STATUS.get(ExecutionStatus(view.status), EXIT_OK)


def show(view: ExecutionView, as_json: bool) -> None:
    if as_json:
        print_json(view.to_json())
        return
    out = console()
    out.print(summary(view))
    if (why := reason_line(view)) is not None:
        out.print(why)
    if view.error:
        line = Text("error", style="red")
        line.append(f": {view.error.get('type')}: {view.error.get('message')}")
        out.print(line)
    if view.output is not None and view.status == ExecutionStatus.COMPLETED:
        out.print(Text(f"output: {json.dumps(view.output)}"))


class Interrupts:
    """Ctrl-C while `wfe run` runs: counted, never raised (a KeyboardInterrupt could land in the
    middle of a database call). The first detaches; a second, while detaching, cancels."""

    def __init__(self) -> None:
        self.count = 0
        self._previous: Any = None

    def __enter__(self) -> Interrupts:
        self._previous = signals.signal(signals.SIGINT, self._interrupted)
        return self

    def __exit__(self, *_: object) -> None:
        signals.signal(signals.SIGINT, self._previous)

    def _interrupted(self, signum: int, frame: FrameType | None) -> None:
        self.count += 1

    @property
    def detached(self) -> bool:
        return self.count >= 1

    @property
    def cancelled(self) -> bool:
        return self.count >= 2


STOPPING = "interrupted: stopping the local worker and coordinator (Ctrl-C again cancels the execution)"
STOP_GRACE = 3.0  # seconds the local processes have to stop on their own before they are killed
STOP_POLL = 0.05


def stop_local(
    processes: list[Process], grace: float = STOP_GRACE, cancel: Callable[[], bool] | None = None
) -> None:
    """Stop `wfe run`'s local processes promptly: SIGTERM, at most ``grace`` seconds to stop
    (a running step may finish and be recorded meanwhile), then SIGKILL to each process group
    (a prefork worker's pool too). ``cancel()`` is polled meanwhile: when it answers True the
    wait ends at once."""
    for process in processes:
        if process.popen is not None and process.alive():
            process.popen.send_signal(signals.SIGTERM)
    deadline = time.monotonic() + grace
    while any(p.alive() for p in processes) and time.monotonic() < deadline:
        if cancel is not None and cancel():
            break
        time.sleep(STOP_POLL)
    for process in processes:
        process.signal(signals.SIGKILL)  # (the group: strays of a stopped process too)
        if process.popen is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.popen.wait(STOP_GRACE)


def detach_line(view: ExecutionView) -> str:
    """What `wfe run` says when Ctrl-C detaches it from an execution that goes on."""
    return (
        f"detached: execution {view.id} is {view.status}; nothing runs it until a worker runs "
        f"again (`wfe worker` and `wfe coordinator`); follow it with `wfe watch {view.id}`, "
        f"cancel it with `wfe cancel {view.id}`"
    )


@click.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--input", "input_text", help="Input data: JSON, or @file.json.")
@click.option("--metadata", "metadata_text", help="Metadata: JSON, or @file.json.")
@click.option("--agents", help="Agent modules, comma-separated (default: WFE_AGENT_MODULES).")
@click.option("--concurrency", "-c", type=click.IntRange(1, 64), default=2, show_default=True)
@click.option("--timeout", type=float, help="Give up after this many seconds.")
@json_option
@click.pass_obj
def run(
    settings: Settings,
    file: Path,
    input_text: str | None,
    metadata_text: str | None,
    agents: str | None,
    concurrency: int,
    timeout: float | None,
    as_json: bool,
) -> None:
    """Run one workflow to the end with a local worker (embedded default: no server needed).

    Exits 0 when completed, 1 failed or cancelled, 2 bad input, 3 waiting for a person or a fix.
    Ctrl-C detaches (exit 130): the local worker and coordinator stop, and the execution stays
    where it is until a worker runs again; a second Ctrl-C while they stop cancels it.
    """
    if agents is not None:
        settings = settings.with_overrides(
            agent_modules=tuple(a.strip() for a in agents.split(",") if a.strip())
        )
    importable_cwd()
    definition = load_file(file)
    input_data = parse_json_object(input_text, "--input", settings.max_request_bytes)
    metadata = parse_json_object(metadata_text, "--metadata", settings.max_request_bytes)
    load_modules(settings.agent_modules)
    if settings.task_modules:
        from workflow_engine.celery_tasks import load_tasks  # (imports Celery)

        load_tasks(settings.task_modules)
    problems = unknown_agents(definition, REGISTRY.names())
    if problems:
        raise DefinitionError(problems, str(file))
    out = error_console() if as_json else console()
    with Engine.from_settings(settings) as engine, Interrupts() as interrupts:
        engine.register(definition)
        log_dir = Path(tempfile.mkdtemp(prefix="wfe-run-"))
        cluster = LocalCluster(settings, log_dir, concurrency=concurrency).start()
        settled = False
        view: ExecutionView | None = None
        try:
            if interrupts.detached:  # (Ctrl-C before it started: nothing is started)
                out.print(Text("interrupted: no execution was started"))
                raise click.exceptions.Exit(EXIT_INTERRUPTED)
            view = engine.start(
                definition.name, input_data, metadata, version=definition.version, actor="cli"
            )
            if not as_json:
                out.print(Text(f"execution {view.id} of {definition.name} {definition.version}"))

            started = view.id

            def worker_gone() -> str | None:
                dead = cluster.failed()
                return f"the {dead.name} process stopped:\n{dead.tail()}" if dead else None

            def stopped() -> bool:
                return interrupts.detached

            if as_json:
                final = engine.wait(started, timeout=timeout, stopped=stopped)
                if not interrupts.detached and (problem := worker_gone()) is not None:
                    raise RuntimeError(problem)
            else:
                final = follow(engine, started, out, timeout, still_running=worker_gone, stopped=stopped)
            settled = final.status in SETTLED_EXECUTION
        finally:
            if settled:
                cluster.stop(graceful=False)  # nothing is left running: no need to wait
            elif interrupts.detached and view is not None:
                out.print(Text(STOPPING))
                stop_local(cluster.processes, cancel=lambda: interrupts.cancelled)
            else:
                stop_local(cluster.processes)
        if interrupts.detached and not settled:
            raise click.exceptions.Exit(_interrupted(engine, final, interrupts, out, as_json))
    show(final, as_json)
    if not as_json and final.status == ExecutionStatus.WAITING:
        out.print(
            Text(
                f"waiting: complete it with `wfe complete {final.id} STEP --data JSON` "
                f"or `wfe retry {final.id}`, then run `wfe worker` and `wfe coordinator` to continue"
            )
        )
    raise click.exceptions.Exit(exit_for(final))


def _interrupted(
    engine: Engine, view: ExecutionView, interrupts: Interrupts, out: Console, as_json: bool
) -> int:
    """After Ctrl-C: cancel the execution (twice) or leave it as it is (once), say which on
    one line, and give the exit code."""
    if interrupts.cancelled:
        try:
            view = engine.cancel(view.id, "Ctrl-C twice in wfe run", actor="cli")
        except InvalidTransition:
            view = engine.get(view.id)  # (it ended meanwhile)
        line = f"cancelled: execution {view.id} is {view.status}; `wfe status {view.id}` shows where it ended"
        code = exit_for(view) if view.status in SETTLED_EXECUTION else EXIT_FAILED
    else:
        view = engine.get(view.id)
        if view.status in SETTLED_EXECUTION:
            show(view, as_json)
            return exit_for(view)
        line = detach_line(view)
        code = EXIT_INTERRUPTED
    if as_json:
        print_json(view.to_json())
    out.print(Text(line))
    return code


@click.command()
@click.argument("workflow")
@click.option("--input", "input_text", help="Input data: JSON, or @file.json.")
@click.option("--metadata", "metadata_text", help="Metadata: JSON, or @file.json.")
@click.option("--version", "version", help="Workflow version (default: the latest).")
@click.option("--idempotency-key", help="The same key starts one execution, not two.")
@click.option("--mode", type=click.Choice(["auto", "step"]), default="auto", show_default=True)
@json_option
@click.pass_obj
def submit(
    settings: Settings,
    workflow: str,
    input_text: str | None,
    metadata_text: str | None,
    version: str | None,
    idempotency_key: str | None,
    mode: str,
    as_json: bool,
) -> None:
    """Start an execution of one of the deployment's workflows (registered with `wfe register`)
    and print its id."""
    with Engine.from_settings(settings) as engine:
        view = engine.start(
            workflow,
            parse_json_object(input_text, "--input", settings.max_request_bytes),
            parse_json_object(metadata_text, "--metadata", settings.max_request_bytes),
            visible_to=engine.store.system_user_id(),
            version=version,
            idempotency_key=idempotency_key,
            mode=mode,
            actor="cli",
        )
        if as_json:
            print_json(engine.get(view.id).to_json())
        else:
            click.echo(view.id)


@click.command()
@click.argument("execution_id", metavar="ID")
@json_option
@click.pass_obj
def status(settings: Settings, execution_id: str, as_json: bool) -> None:
    """Show an execution: status, percent complete, steps, why it is not running, output and
    error."""
    with Engine.from_settings(settings) as engine:
        show(engine.get(engine.resolve(execution_id)), as_json)


@click.command()
@click.argument("execution_id", metavar="ID")
@click.option("--timeout", type=float, help="Stop watching after this many seconds.")
@json_option
@click.pass_obj
def watch(settings: Settings, execution_id: str, timeout: float | None, as_json: bool) -> None:
    """Follow an execution live until it completes, fails, or waits."""
    with Engine.from_settings(settings) as engine:
        execution_id = engine.resolve(execution_id)
        if as_json:
            final = engine.wait(execution_id, timeout=timeout)
        else:
            final = follow(engine, execution_id, console(), timeout)
    show(final, as_json)
    raise click.exceptions.Exit(exit_for(final))


@click.command(name="list")
@click.option("--status", "status_filter", type=click.Choice([s.value for s in ExecutionStatus]))
@click.option("--workflow")
@click.option("--parent", help="Only the child executions of this execution.")
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@click.option("--offset", type=click.IntRange(0), default=0)
@json_option
@click.pass_obj
def list_executions(
    settings: Settings,
    status_filter: str | None,
    workflow: str | None,
    parent: str | None,
    limit: int,
    offset: int,
    as_json: bool,
) -> None:
    """List executions, newest first (each id as its shortest prefix that names it alone, 8
    characters or more: any command takes it)."""
    with Engine.from_settings(settings) as engine:
        parent = engine.resolve(parent) if parent is not None else None
        query = ExecutionQuery(
            workflow=workflow, status=status_filter, parent=parent, limit=limit, offset=offset
        )
        views, total = engine.executions(query)
        if as_json:
            print_json({"total": total, "executions": [v.to_json() for v in views]})
            return
        table = Table("execution", "workflow", "version", "status", "%", "created (UTC)")
        table.columns[0].no_wrap = True
        for v in views:
            table.add_row(
                engine.short_id(v.id),
                Text(v.workflow),
                Text(v.version),
                styled(v.status),
                f"{v.percent_complete:g}",
                timestamp(v.created_at)[:19].replace("T", " "),
            )
    console().print(table)
    console().print(Text(f"{len(views)} of {total}"))


@click.command(name="logs")
@click.argument("execution_id", metavar="ID")
@click.option("--step", "step_name", help="Only this step.")
@click.option(
    "--type", "step_type", type=click.Choice([kind.value for kind in StepType])
)
@click.option("--index", type=click.IntRange(0), help="Only this item of a map step.")
@click.option("--errors", is_flag=True, help="Only attempts that ended with an error.")
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
@json_option
@click.pass_obj
def logs_command(
    settings: Settings,
    execution_id: str,
    step_name: str | None,
    step_type: str | None,
    index: int | None,
    errors: bool,
    limit: int,
    as_json: bool,
) -> None:
    """Every attempt of every step (each map item's with its index), in order, with
    duration, worker and error."""
    with Engine.from_settings(settings) as engine:
        has_error = True if errors else None
        execution_id = engine.resolve(execution_id)
        entries = engine.logs(execution_id, step_name, step_type, has_error, limit, index=index)
    if as_json:
        print_json(entries)
        return
    table = Table("started", "step", "attempt", "status", "duration", "worker", "error")
    for e in entries:
        duration = f"{e['duration_ms'] / 1000:.3f}s" if e["duration_ms"] is not None else ""
        error = f"{e['error_type']}: {e['error_message']}" if e["error_type"] else ""
        table.add_row(
            (e["timestamp"] or "")[11:23],
            Text(e["step_name"] + ("" if e["index"] is None else f"[{e['index']}]")),
            str(e["attempt"]),
            styled(e["status"]),
            duration,
            Text(e["worker"] or ""),
            Text(error),
        )
    console().print(table)


def _done(view: ExecutionView, as_json: bool) -> None:
    """What a control command prints: the execution as JSON, or its id and status."""
    if as_json:
        print_json(view.to_json())
    else:
        click.echo(f"{view.id}: {view.status}")


def _control(name: str, help_text: str) -> click.Command:
    @click.command(name=name, help=help_text)
    @click.argument("execution_id", metavar="ID")
    @json_option
    @click.pass_obj
    def command(settings: Settings, execution_id: str, as_json: bool) -> None:
        with Engine.from_settings(settings) as engine:
            verb = {"pause": engine.pause, "resume": engine.resume, "next": engine.next_step}[name]
            view = verb(engine.resolve(execution_id), actor="cli")
        _done(view, as_json)

    return command


@click.command()
@click.argument("execution_id", metavar="ID")
@click.option("--reason", help="Why; recorded in the history.")
@json_option
@click.pass_obj
def cancel(settings: Settings, execution_id: str, reason: str | None, as_json: bool) -> None:
    """Cancel an execution: nothing more runs, running steps are stopped."""
    with Engine.from_settings(settings) as engine:
        view = engine.cancel(engine.resolve(execution_id), reason, actor="cli")
    _done(view, as_json)


@click.command()
@click.argument("execution_id", metavar="ID")
@click.option("--from-step", help="Run this step and everything after it again (default: the failed step).")
@json_option
@click.pass_obj
def retry(settings: Settings, execution_id: str, from_step: str | None, as_json: bool) -> None:
    """Retry a failed or waiting execution; upstream outputs are kept."""
    with Engine.from_settings(settings) as engine:
        view = engine.retry(engine.resolve(execution_id), from_step, actor="cli")
    _done(view, as_json)


@click.command()
@click.argument("execution_id", metavar="ID")
@click.option("--to-version", "version", required=True, help="The version of its workflow to move it to.")
@json_option
@click.pass_obj
def migrate(settings: Settings, execution_id: str, version: str, as_json: bool) -> None:
    """Move a running, paused, waiting or failed execution to another version of its workflow."""
    with Engine.from_settings(settings) as engine:
        view = engine.migrate(engine.resolve(execution_id), version, actor="cli")
    if as_json:
        _done(view, as_json)
    else:
        click.echo(f"{view.id}: moved to {view.workflow} {view.version}, {view.status}")


@click.command()
@click.argument("execution_id", metavar="ID")
@click.argument("step")
@click.option("--data", "data_text", required=True, help="The step's data: JSON, or @file.json.")
@click.option("--user", default=lambda: os.environ.get("USER", "cli"), help="Who completes it.")
@json_option
@click.pass_obj
def complete(
    settings: Settings, execution_id: str, step: str, data_text: str, user: str, as_json: bool
) -> None:
    """Complete a human step (or a step waiting for a fix) with data."""
    data = parse_json_object(data_text, "--data", settings.max_request_bytes) or {}
    with Engine.from_settings(settings) as engine:
        view = engine.complete_human_task(engine.resolve(execution_id), step, data, user_id=user)
    _done(view, as_json)


@click.command()
@click.argument("execution_id", metavar="ID")
@click.argument("name")
@click.option("--data", "data_text", default="{}", help="The signal's data: JSON, or @file.json.")
@click.option("--user", default=lambda: os.environ.get("USER", "cli"), help="Who sends it.")
@json_option
@click.pass_obj
def signal(
    settings: Settings, execution_id: str, name: str, data_text: str, user: str, as_json: bool
) -> None:
    """Send a signal to an execution: the wait step waiting for it takes it, or it is kept
    until one is reached."""
    data = parse_json_object(data_text, "--data", settings.max_request_bytes) or {}
    with Engine.from_settings(settings) as engine:
        view = engine.signal(engine.resolve(execution_id), name, data, user_id=user)
    _done(view, as_json)


COMMANDS = [
    run,
    submit,
    status,
    watch,
    list_executions,
    logs_command,
    cancel,
    retry,
    migrate,
    complete,
    signal,
    _control("pause", "Pause: no new step starts until resumed."),
    _control("resume", "Resume a paused execution."),
    _control("next", "Step mode: dispatch the next ready step."),
]
