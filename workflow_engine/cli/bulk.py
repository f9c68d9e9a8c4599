"""`wfe bulk cancel|retry|pause|resume`: every execution the filters match, each in its own
transition recorded with the local user's name."""

from __future__ import annotations

import os
from datetime import UTC, datetime

import click

from workflow_engine.bulk import VERBS
from workflow_engine.cli.output import json_option, print_json
from workflow_engine.core.states import ExecutionStatus
from workflow_engine.engine import Engine
from workflow_engine.settings import Settings
from workflow_engine.store.listing import ExecutionQuery


def _utc(value: datetime | None) -> datetime | None:
    return None if value is None else (value.replace(tzinfo=UTC) if value.tzinfo is None else value)


@click.command()
@click.argument("verb", type=click.Choice(VERBS))
@click.option("--workflow", help="Executions of this workflow.")
@click.option("--status", type=click.Choice([s.value for s in ExecutionStatus]), help="In this status.")
@click.option("--created-after", type=click.DateTime(), help="Created at or after (UTC).")
@click.option("--created-before", type=click.DateTime(), help="Created before (UTC).")
@click.option("--id", "ids", multiple=True, help="This execution (repeat for more).")
@click.option("--reason", help="Recorded with each cancel or pause.")
@click.option("--dry-run", is_flag=True, help="Count what would change; change nothing.")
@click.option("--user", default=lambda: os.environ.get("USER", "cli"), help="Who acts (recorded).")
@json_option
@click.pass_obj
def bulk(
    settings: Settings,
    verb: str,
    workflow: str | None,
    status: str | None,
    created_after: datetime | None,
    created_before: datetime | None,
    ids: tuple[str, ...],
    reason: str | None,
    dry_run: bool,
    user: str,
    as_json: bool,
) -> None:
    """Cancel, retry, pause or resume every execution the filters match."""
    query = ExecutionQuery(
        workflow=workflow,
        status=status,
        created_after=_utc(created_after),
        created_before=_utc(created_before),
        ids=ids or None,
    )
    with Engine.from_settings(settings) as engine:
        result = engine.bulk.apply(verb, query, actor=user, dry_run=dry_run, reason=reason)
    if as_json:
        print_json(result.as_dict())
    elif dry_run:
        click.echo(f"{result.matched} matched; {result.would_change} would change")
    else:
        click.echo(f"{result.matched} matched; {result.changed} changed, {result.refused} refused")
    if result.truncated:
        click.echo("more matched than one bulk action takes: run it again for the rest", err=True)


COMMANDS = [bulk]
