"""`wfe validate`, `wfe register`, `wfe workflows`."""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from workflow_engine.cli.output import EXIT_FAILED, console, json_option, print_json
from workflow_engine.definitions.compatibility import breaking
from workflow_engine.definitions.loader import check_file, load_file
from workflow_engine.engine import Engine
from workflow_engine.settings import Settings
from workflow_engine.store.records import WorkflowRecord


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
@json_option
def validate(file: Path, as_json: bool) -> None:
    """Check a definition: every problem, with its location; exit 1 if any."""
    definition, problems = check_file(file)
    if as_json:
        print_json(
            {
                "file": str(file),
                "valid": not problems,
                "workflow": {"name": definition.name, "version": definition.version} if definition else None,
                "problems": [{"location": p.location, "message": p.message} for p in problems],
            }
        )
    elif problems:
        for problem in problems:
            where = f"{file}: {problem.location}" if problem.location else str(file)
            click.echo(f"{where}: {problem.message}", err=True)
    elif definition is not None:
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
@json_option
@click.pass_obj
def register(settings: Settings, file: Path, require_compatible: bool, as_json: bool) -> None:
    """Store a definition version (name and version are immutable once registered), and say
    what it changes against the latest version."""
    definition = load_file(file)  # (read and checked once, for the report and the registration)
    with Engine.from_settings(settings) as engine:
        latest, changes = engine.changes(definition)
        record = engine.register(definition, require_compatible=require_compatible)
    if as_json:
        print_json(
            _workflow_json(record)
            | {
                "against": latest.version if latest else None,
                "compatible": not breaking(changes),
                "changes": [change.document() for change in changes],
            }
        )
        return
    if latest is not None:
        summary = f"{len(changes)} change{'s' if len(changes) != 1 else ''}" if changes else "no change"
        click.echo(f"against {latest.name} {latest.version}: {summary}, {len(breaking(changes))} breaking")
        for change in changes:
            click.echo(f"  {change.line()}")
    click.echo(f"registered {record.name} {record.version}")


@click.command()
@json_option
@click.pass_obj
def workflows(settings: Settings, as_json: bool) -> None:
    """List registered workflow versions."""
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


COMMANDS = [validate, register, workflows]
