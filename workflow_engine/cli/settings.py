"""`wfe settings show|example`, and the line that names the database a command works on."""

from __future__ import annotations

from pathlib import Path

import click

from workflow_engine import envfile
from workflow_engine.cli.output import json_option, print_json
from workflow_engine.settings import Settings
from workflow_engine.store.urls import shown


def env_file_read() -> Path | None:
    """The env file the running `wfe` command read its settings from, if any."""
    context = click.get_current_context(silent=True)
    return context.find_root().meta.get("wfe.env_file") if context else None


def database_line(settings: Settings) -> str:
    """``database URL (settings from FILE)``, the password masked: the first line of every
    command that changes a database, and of every process."""
    source = env_file_read()
    origin = f"settings from {source}" if source else "no env file; settings from the environment"
    return f"database {shown(settings.database_url)} ({origin})"


def process_line(settings: Settings) -> str:
    """The first line a long-running process logs: its database and its broker, masked."""
    from kombu.utils.url import maybe_sanitize_url

    return f"{database_line(settings)}; broker {maybe_sanitize_url(settings.broker_url)}"


@click.group("settings")
def settings_group() -> None:
    """The settings every process reads (WFE_* variables, over the env file)."""


@settings_group.command("show")
@json_option
@click.pass_obj
def show(settings: Settings, as_json: bool) -> None:
    """Print the settings in force, secrets masked, and the env file they were read from."""
    values = {}
    for name, value in settings.model_dump(mode="json").items():
        if name in ("jwt_secret", "metrics_token", "encryption_keys") and value is not None:
            value = "***"
        elif name == "database_url":
            value = shown(value)
        values[f"WFE_{name.upper()}"] = value
    source = env_file_read()
    if as_json:
        print_json({"env_file": str(source) if source else None, "settings": values})
        return
    click.echo(f"# env file: {source or 'none'}")
    for variable, value in values.items():
        click.echo(f"{variable}={'' if value is None else value}")


@settings_group.command("example")
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True), help="Write it to this file.")
def example(output: str | None) -> None:
    """Print an env file that lists every setting with what it is for (config/wfe.env.example)."""
    text = envfile.example()
    if output:
        Path(output).write_text(text, encoding="utf-8")
    else:
        click.echo(text, nl=False)


COMMANDS = [settings_group]
