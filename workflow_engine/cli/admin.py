"""`wfe db upgrade`."""

from __future__ import annotations

import click

from workflow_engine.cli.output import json_option, print_json
from workflow_engine.settings import Settings
from workflow_engine.store import migrate


@click.group()
def db() -> None:
    """Database administration."""


@db.command()
@json_option
@click.pass_obj
def upgrade(settings: Settings, as_json: bool) -> None:
    """Apply every migration not applied yet."""
    migrate.upgrade(settings.database_url)
    revision = migrate.head_revision()
    if as_json:
        print_json({"database": "upgraded", "revision": revision})
    else:
        click.echo(f"database at revision {revision}")


COMMANDS = [db]
