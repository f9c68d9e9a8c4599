"""`wfe schedule create | list | show | pause | resume | trigger | delete`.

Schedules made here belong to the engine's own (system) user, as executions started by `wfe
submit` do; every change is recorded with the local user's name (``--user``). A name is unique
among its owner's schedules only: `show`, `pause`, `resume`, `trigger` and `delete` look NAME up
among the deployment's schedules, or among a user's with ``--owner USERNAME``; `list` lists
everyone's, with their owners.
"""

from __future__ import annotations

import json
import os
from typing import Any

import click
from rich.table import Table

from workflow_engine.cli.executions import parse_json_object
from workflow_engine.cli.output import console, json_option, print_json
from workflow_engine.core.schedules import Overlap
from workflow_engine.engine import Engine
from workflow_engine.schedules import ScheduleView
from workflow_engine.settings import Settings

user_option = click.option(
    "--user", default=lambda: os.environ.get("USER", "cli"), help="Who makes the change (recorded)."
)
owner_option = click.option(
    "--owner",
    metavar="USERNAME",
    help="Whose schedule NAME is (default: the deployment's, those wfe schedule create makes).",
)


def _owner_id(engine: Engine, owner: str | None) -> int | None:
    """The id of ``owner`` (None: the deployment's); an unknown user is one line, exit 1."""
    return engine.store.get_user(owner).id if owner is not None else None


@click.group()
def schedule() -> None:
    """Start a workflow on a cron expression or every N seconds, once per fire time."""


@schedule.command()
@click.argument("name")
@click.option("--workflow", "-w", required=True, help="The workflow to start.")
@click.option("--version", help="A version of it (default: the latest when it fires).")
@click.option("--cron", help='A 5-field cron expression, e.g. "0 2 * * *".')
@click.option("--every", type=int, help="Or every N seconds.")
@click.option("--timezone", help="IANA time zone of the cron expression (default UTC).")
@click.option("--input", "input_text", help="The input of each execution: JSON, or @file.json.")
@click.option(
    "--overlap",
    type=click.Choice([o.value for o in Overlap]),
    default=Overlap.SKIP.value,
    show_default=True,
    help="What a fire time does while the previous execution still runs.",
)
@click.option(
    "--catchup-window",
    type=int,
    default=0,
    show_default=True,
    help="After a downtime, start fire times missed within this many seconds.",
)
@user_option
@json_option
@click.pass_obj
def create(
    settings: Settings,
    name: str,
    workflow: str,
    version: str | None,
    cron: str | None,
    every: int | None,
    timezone: str | None,
    input_text: str | None,
    overlap: str,
    catchup_window: int,
    user: str,
    as_json: bool,
) -> None:
    """Create a schedule NAME that starts WORKFLOW from now on."""
    data = parse_json_object(input_text, "--input")
    with Engine.from_settings(settings) as engine:
        view = engine.schedules.create(
            name,
            workflow,
            cron=cron,
            every=every,
            timezone=timezone,
            input=data,
            version=version,
            overlap=overlap,
            catchup_window=catchup_window,
            actor=user,
        )
    _show(view, as_json)


@schedule.command("list")
@json_option
@click.pass_obj
def list_schedules(settings: Settings, as_json: bool) -> None:
    """Every schedule, with its next fire time."""
    with Engine.from_settings(settings) as engine:
        views = engine.schedules.list()
    if as_json:
        print_json([view.as_dict() for view in views])
        return
    table = Table(
        "name", "owner", "workflow", "timing", "overlap", "paused", "next fire time", "last execution"
    )
    for view in views:
        last = view.last_executions[0] if view.last_executions else None
        table.add_row(
            view.name,
            view.owner or "-",
            view.workflow + (f"@{view.version}" if view.version else ""),
            _timing(view),
            view.overlap,
            "yes" if view.paused else "no",
            view.next_fire_times[0].isoformat() if view.next_fire_times else "-",
            f"{last['execution_id']} ({last['status']})" if last else "-",
        )
    console().print(table)


@schedule.command()
@click.argument("name")
@owner_option
@json_option
@click.pass_obj
def show(settings: Settings, name: str, owner: str | None, as_json: bool) -> None:
    """A schedule: its settings, next five fire times, last executions, the fire times that
    started nothing (skipped, missed, paused, failed: with why) and changes."""
    with Engine.from_settings(settings) as engine:
        view = engine.schedules.get(name, _owner_id(engine, owner))
    _show(view, as_json)


def _verb(verb: str, help_text: str) -> click.Command:
    @click.command(verb, help=help_text)
    @click.argument("name")
    @owner_option
    @user_option
    @json_option
    @click.pass_obj
    def command(settings: Settings, name: str, owner: str | None, user: str, as_json: bool) -> None:
        with Engine.from_settings(settings) as engine:
            view = getattr(engine.schedules, verb)(name, _owner_id(engine, owner), actor=user)
        _show(view, as_json)

    return command


schedule.add_command(_verb("pause", "Pause NAME: no fire time starts anything until resumed."))
schedule.add_command(_verb("resume", "Resume NAME from now on (paused fire times are not caught up)."))


@schedule.command()
@click.argument("name")
@owner_option
@user_option
@json_option
@click.pass_obj
def trigger(settings: Settings, name: str, owner: str | None, user: str, as_json: bool) -> None:
    """Fire NAME now, under its overlap policy."""
    with Engine.from_settings(settings) as engine:
        fired = engine.schedules.trigger(name, _owner_id(engine, owner), actor=user)
    document = {
        "schedule": name,
        "scheduled_at": fired.fire_time.isoformat(),
        "action": fired.action,
        "execution_id": fired.execution_id,
        "error": fired.error,
    }
    if as_json:
        print_json(document)
    elif fired.execution_id:
        click.echo(f"{name}: started execution {fired.execution_id}")
    else:
        click.echo(f"{name}: {fired.action}" + (f" ({fired.error})" if fired.error else ""))


@schedule.command()
@click.argument("name")
@owner_option
@user_option
@json_option
@click.pass_obj
def delete(settings: Settings, name: str, owner: str | None, user: str, as_json: bool) -> None:
    """Delete NAME (the executions it started stay)."""
    with Engine.from_settings(settings) as engine:
        engine.schedules.delete(name, _owner_id(engine, owner), actor=user)
    if as_json:
        print_json({"deleted": name})
    else:
        click.echo(f"deleted schedule {name}")


def _timing(view: ScheduleView) -> str:
    if view.cron is not None:
        return f"cron {view.cron} ({view.timezone})"
    return f"every {view.every}s"


def _show(view: ScheduleView, as_json: bool) -> None:
    if as_json:
        print_json(view.as_dict())
        return
    upcoming = ", ".join(t.isoformat() for t in view.next_fire_times) or "- (paused)"
    lines = [
        f"{view.name}: {view.workflow}" + (f"@{view.version}" if view.version else ""),
        f"  owner: {view.owner or '-'}",
        f"  timing: {_timing(view)}; overlap: {view.overlap}; catch-up window: {view.catchup_window}s",
        f"  paused: {'yes' if view.paused else 'no'}; input: {json.dumps(view.input)}",
        f"  next fire times: {upcoming}",
        *_listed(
            "last executions",
            [f"{x['scheduled_at']}  {x['execution_id']}  {x['status']}" for x in view.last_executions],
        ),
        *_listed("fire times that started nothing", [_not_started(x) for x in view.skipped_fires]),
        *_listed("changes", [f"{c['at']}  {c['action']} by {c['actor']}" for c in view.changes]),
    ]
    out = console()
    for line in lines:
        out.print(line, markup=False)


def _not_started(fire: dict[str, Any]) -> str:
    when = fire["scheduled_at"]
    if fire["until"] != when:
        count = f"{fire['count']} fire times" if fire["count"] is not None else "many fire times"
        when = f"{when} to {fire['until']} ({count})"
    return f"{when}  {fire['action']}: {fire['reason']}"


def _listed(title: str, lines: list[str]) -> list[str]:
    return [f"  {title}:" + ("" if lines else " none"), *(f"    {line}" for line in lines)]


COMMANDS = [schedule]
