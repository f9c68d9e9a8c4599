"""`wfe users create|list|disable|enable|role|passwd|revoke|delete`: the API's users, from the
command line with the API's settings (the same functions as the REST API's /users)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TypeVar

import click

from workflow_engine import users as accounts
from workflow_engine.cli.output import json_option, print_json
from workflow_engine.cli.settings import database_line
from workflow_engine.settings import Settings
from workflow_engine.store.opening import open_store
from workflow_engine.store.repository import ROLES, Store
from workflow_engine.users import UserInfo, create_user

ACTOR = "command line"
T = TypeVar("T")


def _with_store(settings: Settings, action: Callable[[Store], T]) -> T:
    store = open_store(settings.database_url)
    try:
        return action(store)
    finally:
        store.dispose()


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return str(click.prompt("Password", hide_input=True, confirmation_prompt=True))


def _report(settings: Settings, info: UserInfo, as_json: bool, what: str) -> None:
    if as_json:
        print_json(info.as_dict())
        return
    click.echo(database_line(settings))
    click.echo(what)
    for name in info.paused_schedules:
        click.echo(f"paused schedule {name} (its owner may not start workflows)")


@click.group()
def users() -> None:
    """API users: create, list, disable, enable, change a role or a password, revoke every
    token, delete."""


@users.command(name="create")
@click.argument("username")
@click.option("--role", type=click.Choice(ROLES), required=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@json_option
@click.pass_obj
def create(settings: Settings, username: str, role: str, password_stdin: bool, as_json: bool) -> None:
    """Create a user who can log in to the REST API."""
    password = _password(password_stdin)
    user = _with_store(settings, lambda store: create_user(store, username, password, role))
    if as_json:
        print_json({"id": user.id, "username": user.username, "role": user.role})
    else:
        click.echo(database_line(settings))
        click.echo(f"created {user.role} {user.username}")


@users.command(name="list")
@json_option
@click.pass_obj
def list_users(settings: Settings, as_json: bool) -> None:
    """Every user, with their role and whether they are disabled."""
    found = _with_store(settings, accounts.list_users)
    if as_json:
        print_json([info.as_dict() for info in found])
        return
    for info in found:
        state = "disabled" if info.disabled else "active"
        click.echo(f"{info.username}  {info.role}  {state}  created {info.created_at.isoformat()}")


@users.command()
@click.argument("username")
@json_option
@click.pass_obj
def disable(settings: Settings, username: str, as_json: bool) -> None:
    """Disable a user: no login, every token of theirs refused at once, their schedules paused."""
    info = _with_store(settings, lambda store: accounts.set_disabled(store, username, True, ACTOR))
    _report(settings, info, as_json, f"disabled {username}; their tokens are refused")


@users.command()
@click.argument("username")
@json_option
@click.pass_obj
def enable(settings: Settings, username: str, as_json: bool) -> None:
    """Enable a disabled user (they log in again; their paused schedules stay paused)."""
    info = _with_store(settings, lambda store: accounts.set_disabled(store, username, False, ACTOR))
    _report(settings, info, as_json, f"enabled {username}")


@users.command()
@click.argument("username")
@click.argument("role", type=click.Choice(ROLES))
@json_option
@click.pass_obj
def role(settings: Settings, username: str, role: str, as_json: bool) -> None:
    """Give a user another role (a viewer's schedules are paused)."""
    info = _with_store(settings, lambda store: accounts.set_role(store, username, role, ACTOR))
    _report(settings, info, as_json, f"{username} is now {info.role}")


@users.command()
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Read the new password from standard input.")
@json_option
@click.pass_obj
def passwd(settings: Settings, username: str, password_stdin: bool, as_json: bool) -> None:
    """Set a user's password; every token issued before is refused."""
    password = _password(password_stdin)
    info = _with_store(settings, lambda store: accounts.set_password(store, username, password, ACTOR))
    _report(settings, info, as_json, f"password of {username} changed; their tokens are refused")


@users.command()
@click.argument("username")
@json_option
@click.pass_obj
def revoke(settings: Settings, username: str, as_json: bool) -> None:
    """Log a user out everywhere: every access and refresh token of theirs is refused."""
    info = _with_store(settings, lambda store: accounts.revoke_tokens(store, username, ACTOR))
    _report(settings, info, as_json, f"every token of {username} is refused")


@users.command()
@click.argument("username")
@json_option
@click.pass_obj
def delete(settings: Settings, username: str, as_json: bool) -> None:
    """Delete a user who owns nothing (one who owns executions, workflows or schedules is
    refused: disable them instead)."""
    _with_store(settings, lambda store: accounts.delete_user(store, username, ACTOR))
    if as_json:
        print_json({"deleted": username})
    else:
        click.echo(database_line(settings))
        click.echo(f"deleted {username}")


COMMANDS = [users]
