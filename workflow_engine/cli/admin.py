"""`wfe db upgrade`, `wfe users create`."""

from __future__ import annotations

import sys

import click

from workflow_engine.cli.output import json_option, print_json
from workflow_engine.settings import Settings
from workflow_engine.store import migrate
from workflow_engine.store.opening import open_store
from workflow_engine.store.repository import ROLES
from workflow_engine.users import create_user


@click.group()
def db() -> None:
    """Database administration."""


@db.command()
@json_option
@click.pass_obj
def upgrade(settings: Settings, as_json: bool) -> None:
    """Apply every migration not applied yet."""
    notes = migrate.upgrade(settings.database_url)
    revision = migrate.head_revision()
    if as_json:
        print_json({"database": "upgraded", "revision": revision, "notes": notes})
    else:
        for text in notes:
            click.echo(f"note: {text}", err=True)
        click.echo(f"database at revision {revision}")


@click.group()
def users() -> None:
    """API users."""


@users.command(name="create")
@click.argument("username")
@click.option("--role", type=click.Choice(ROLES), required=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@json_option
@click.pass_obj
def create(settings: Settings, username: str, role: str, password_stdin: bool, as_json: bool) -> None:
    """Create a user who can log in to the REST API."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    store = open_store(settings.database_url)
    try:
        user = create_user(store, username, password, role)
    finally:
        store.dispose()
    if as_json:
        print_json({"id": user.id, "username": user.username, "role": user.role})
    else:
        click.echo(f"created {user.role} {user.username}")


COMMANDS = [db, users]
