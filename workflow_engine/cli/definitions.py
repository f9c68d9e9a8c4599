"""`wfe validate`, `wfe register`, `wfe workflows` (and `wfe workflows delete`)."""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from workflow_engine import versions
from workflow_engine.agents import REGISTRY, load_modules
from workflow_engine.cli.output import (
    EXIT_FAILED,
    EXIT_USAGE,
    console,
    fail,
    importable_cwd,
    json_option,
    print_json,
)
from workflow_engine.definitions.agents import AgentCheck, UnknownAgents, check_agents
from workflow_engine.definitions.compatibility import breaking
from workflow_engine.definitions.loader import check_file, load_file
from workflow_engine.definitions.queues import queue_problems
from workflow_engine.engine import Engine
from workflow_engine.settings import Settings
from workflow_engine.store.records import WorkflowRecord

agents_option = click.option(
    "--agents",
    "agent_modules",
    metavar="MODULES",
    help="Comma-separated agent modules (imported from the current directory, as `wfe worker --agents` "
    "does) whose agents count as known, besides those the live workers report.",
)
allow_unknown_option = click.option(
    "--allow-unknown-agents",
    is_flag=True,
    help="Do not refuse agents that no live worker and no --agents module serves.",
)


def _module_agents(agent_modules: str | None) -> frozenset[str]:
    """The agents the modules of ``--agents`` register (imported here, from the current directory)."""
    if agent_modules is None:
        return frozenset()
    importable_cwd()
    load_modules([m.strip() for m in agent_modules.split(",") if m.strip()])
    return REGISTRY.names()


def _agents_json(found: AgentCheck, note: str | None) -> dict[str, object]:
    return {
        "checked": found.checked,
        "known": sorted(found.known) if found.known is not None else None,
        "unknown": {agent: where for agent, where in found.unknown.items()},
        "note": note,
    }


def _workflow_json(record: WorkflowRecord) -> dict[str, object]:
    return {
        "name": record.name,
        "version": record.version,
        "description": record.description,
        "steps": len(record.document["steps"]),
        "created_at": record.created_at.isoformat(),
    }


@click.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@agents_option
@allow_unknown_option
@json_option
@click.pass_obj
def validate(
    settings: Settings, file: Path, agent_modules: str | None, allow_unknown_agents: bool, as_json: bool
) -> None:
    """Check a definition: every problem, with its location; exit 1 if any. Its agents are
    checked against those the live workers report and those of --agents modules."""
    definition, problems = check_file(file)
    found, note = AgentCheck(None), None
    if definition is not None:
        problems += queue_problems(definition, versions.reserved_queues(settings), settings.queue_prefix)
        local = _module_agents(agent_modules)
        live, unread = versions.live_agents_of(settings)
        found = check_agents(definition, live | local)
        if not found.checked:
            note = f"{unread}; pass --agents MODULES" if unread else versions.unchecked_reason(settings)
        elif found.unknown and allow_unknown_agents:
            note = f"{found.line()} (allowed: --allow-unknown-agents)"
        elif found.unknown:
            problems = [*problems, *found.problems()]
    if as_json:
        print_json(
            {
                "file": str(file),
                "valid": not problems,
                "workflow": {"name": definition.name, "version": definition.version} if definition else None,
                "problems": [{"location": p.location, "message": p.message} for p in problems],
                "agents": _agents_json(found, note),
            }
        )
    elif problems:
        for problem in problems:
            where = f"{file}: {problem.location}" if problem.location else str(file)
            click.echo(f"{where}: {problem.message}", err=True)
    elif definition is not None:
        if note is not None:
            click.echo(f"{file}: note: {note}", err=True)
        click.echo(f"{file}: valid: {definition.name} {definition.version}, {len(definition.steps)} steps")
    if problems:
        raise click.exceptions.Exit(EXIT_FAILED)


@click.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--require-compatible",
    is_flag=True,
    help="Refuse a breaking change against the latest version (a step removed or retyped, input narrowed).",
)
@agents_option
@allow_unknown_option
@json_option
@click.pass_obj
def register(
    settings: Settings,
    file: Path,
    require_compatible: bool,
    agent_modules: str | None,
    allow_unknown_agents: bool,
    as_json: bool,
) -> None:
    """Store a definition version (name and version are immutable once registered), and say
    what it changes against the latest version. An agent that no live worker reports (and no
    --agents module registers) is refused, unless --allow-unknown-agents; with no live worker
    and no --agents, agents are not checked (said on stderr)."""
    definition = load_file(file)  # (read and checked once, for the report and the registration)
    local = _module_agents(agent_modules)
    with Engine.from_settings(settings) as engine:
        latest, changes = engine.changes(definition)
        try:
            record, found = versions.register(
                engine,
                definition,
                allow_unknown_agents=allow_unknown_agents,
                modules=local,
                require_compatible=require_compatible,
            )
        except UnknownAgents as exc:
            message = f"{exc.source}: {exc.check.line()}; to register it anyway: --allow-unknown-agents"
            if as_json:
                print_json({"error": {"type": type(exc).__name__, "message": message}})
            fail(message, EXIT_USAGE)
            raise  # (fail exits)
    note = None
    if not found.checked:
        note = versions.unchecked_reason(settings)
    elif found.unknown:
        note = f"{found.line()} (allowed: --allow-unknown-agents)"
    if note is not None:
        click.echo(f"wfe: warning: {note}", err=True)
    if as_json:
        print_json(
            _workflow_json(record)
            | {
                "against": latest.version if latest else None,
                "compatible": not breaking(changes),
                "changes": [change.document() for change in changes],
                "agents": _agents_json(found, note),
            }
        )
        return
    if latest is not None:
        summary = f"{len(changes)} change{'s' if len(changes) != 1 else ''}" if changes else "no change"
        click.echo(f"against {latest.name} {latest.version}: {summary}, {len(breaking(changes))} breaking")
        for change in changes:
            click.echo(f"  {change.line()}")
    click.echo(f"registered {record.name} {record.version}")


@click.group(invoke_without_command=True)
@json_option
@click.pass_context
def workflows(ctx: click.Context, as_json: bool) -> None:
    """List registered workflow versions (`wfe workflows delete NAME VERSION` deletes one that
    never ran)."""
    if ctx.invoked_subcommand is not None:
        return
    settings: Settings = ctx.obj
    with Engine.from_settings(settings) as engine:
        records = engine.workflows()
    if as_json:
        print_json([_workflow_json(r) for r in records])
        return
    table = Table("workflow", "version", "steps", "registered", "description")
    for r in records:
        table.add_row(
            r.name, r.version, str(len(r.document["steps"])), f"{r.created_at:%Y-%m-%d %H:%M}", r.description
        )
    console().print(table)


@workflows.command()
@click.argument("name")
@click.argument("version")
@json_option
@click.pass_obj
def delete(settings: Settings, name: str, version: str, as_json: bool) -> None:
    """Delete VERSION of workflow NAME, if no execution ever ran it (and no schedule or other
    workflow starts it): NAME VERSION may then be registered again, with another body. The
    command line acts for the deployment: it deletes the versions of names `wfe register` made."""
    with Engine.from_settings(settings) as engine:
        system = engine.store.system_user_id()
        record = versions.delete(engine, name, version, owner_id=system, visible_to=None)
    if as_json:
        print_json({"deleted": {"name": record.name, "version": record.version}})
    else:
        click.echo(f"deleted {record.name} {record.version}")


COMMANDS = [validate, register, workflows]
