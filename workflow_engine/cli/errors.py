"""`wfe errors [--since 24h]` lists the error groups; `wfe errors retry GROUP` retries every
failed execution of one from its failed step."""

from __future__ import annotations

import os
from datetime import timedelta

import click
from rich.table import Table

from workflow_engine.cli.output import console, json_option, print_json
from workflow_engine.core.retention import parse_age
from workflow_engine.engine import Engine
from workflow_engine.errors import InputError, Problem
from workflow_engine.settings import Settings


def _since(text: str) -> timedelta:
    try:
        return parse_age(text)
    except ValueError as exc:
        raise InputError("--since", [Problem("", str(exc))]) from None


@click.group(invoke_without_command=True)
@click.option("--since", default="24h", show_default=True, help="How far back: 30m, 24h, 7d.")
@json_option
@click.pass_context
def errors(ctx: click.Context, since: str, as_json: bool) -> None:
    """Failed attempts grouped by workflow, step, error type, code and message pattern."""
    ctx.meta["since"] = since
    if ctx.invoked_subcommand is not None:
        return
    settings: Settings = ctx.obj
    with Engine.from_settings(settings) as engine:
        groups = engine.errors.list(_since(since))
    if as_json:
        print_json([g.as_dict() for g in groups])
        return
    table = Table("group", "workflow", "step", "error", "message", "count", "last seen", "executions")
    for g in groups:
        error = g.error_type + (f" ({g.code})" if g.code else "")
        last = g.last_seen.isoformat() if g.last_seen else "-"
        table.add_row(
            g.group, g.workflow, g.step, error, g.message, str(g.count), last, str(len(g.execution_ids))
        )
    console().print(table)


@errors.command()
@click.argument("group")
@click.option("--user", default=lambda: os.environ.get("USER", "cli"), help="Who retries (recorded).")
@json_option
@click.pass_context
def retry(ctx: click.Context, group: str, user: str, as_json: bool) -> None:
    """Retry every failed execution of GROUP from its failed step."""
    settings: Settings = ctx.obj
    with Engine.from_settings(settings) as engine:
        result = engine.errors.retry(group, actor=user, since=_since(ctx.meta.get("since", "24h")))
    if as_json:
        print_json(result.as_dict())
    else:
        click.echo(f"{result.matched} failed executions; {result.changed} retried, {result.refused} refused")


COMMANDS = [errors]
