"""`wfe workers`: the worker nodes, one line each, from their processes' heartbeats."""

from __future__ import annotations

import click
from rich.table import Table

from workflow_engine.cli.output import console, json_option, print_json
from workflow_engine.engine import Engine
from workflow_engine.settings import Settings
from workflow_engine.worker.nodes import nodes


@click.command()
@json_option
@click.pass_obj
def workers(settings: Settings, as_json: bool) -> None:
    """The worker nodes (live first): their live processes, how many steps they run at once,
    their queues and agents, and their last heartbeat. A node is silent when none of its
    processes has beaten for three heartbeat intervals."""
    with Engine.from_settings(settings) as engine:
        now = engine.store.clock.now()
        found = nodes(engine.store.workers(), now, 3 * settings.heartbeat_interval)
    if as_json:
        print_json([node.as_dict() for node in found])
        return
    if not found:
        click.echo("no worker has reported")
        return
    table = Table()
    table.add_column("node", no_wrap=True)  # (a node's name is what one copies: never cut)
    for header in ("state", "processes", "capacity", "queues", "agents", "heartbeat"):
        table.add_column(header)
    for node in found:
        table.add_row(
            node.name,
            "live" if node.live else "silent",
            str(len(node.pids)),
            str(node.capacity),
            ", ".join(node.queues),
            str(len(node.agents)),
            f"{(now - node.last_seen).total_seconds():.0f} s ago",
        )
    console().print(table)


COMMANDS = [workers]
