"""`wfe db upgrade`, `wfe db purge`, `wfe audit`, `wfe keys new|rotate` (`wfe users`: cli/users.py)."""

from __future__ import annotations

import contextlib
from dataclasses import asdict

import click

from workflow_engine.audit import Audit
from workflow_engine.cli.output import json_option, print_json
from workflow_engine.cli.settings import database_line
from workflow_engine.core.retention import parse_age, purgeable
from workflow_engine.errors import ConfigurationError, InputError, Problem
from workflow_engine.retention import Purger
from workflow_engine.secrets import NO_KEY, Keyring, new_key
from workflow_engine.settings import Settings
from workflow_engine.store import migrate, sealed
from workflow_engine.store.opening import open_store
from workflow_engine.store.urls import shown


@click.group()
def db() -> None:
    """Database administration."""


@db.command()
@json_option
@click.pass_obj
def upgrade(settings: Settings, as_json: bool) -> None:
    """Apply every migration not applied yet."""
    if not as_json:
        click.echo(database_line(settings))
    notes = migrate.upgrade(settings.database_url)
    revision = migrate.head_revision()
    if as_json:
        print_json({"database": shown(settings.database_url), "revision": revision, "notes": notes})
    else:
        for text in notes:
            click.echo(f"note: {text}", err=True)
        click.echo(f"at revision {revision}")


@db.command("purge")
@click.option("--older-than", "older_than", required=True, help="Age of the finish, e.g. 30d, 12h, 90m.")
@click.option(
    "--status", "statuses", help="Comma-separated: completed, failed, cancelled (default: all three)."
)
@click.option("--workflow", help="Only executions of this workflow.")
@click.option(
    "--archive",
    type=click.Path(dir_okay=False, writable=True),
    help="Write each one to this JSONL file first.",
)
@click.option("--dry-run", is_flag=True, help="Count what would go; delete nothing.")
@json_option
@click.pass_obj
def purge(
    settings: Settings,
    older_than: str,
    statuses: str | None,
    workflow: str | None,
    archive: str | None,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Delete ended executions that finished before the cutoff, with their step runs, events,
    signals and child executions. Running, waiting and paused ones are never touched."""
    try:
        age = parse_age(older_than)
        chosen = purgeable(statuses.split(",")) if statuses is not None else None
    except ValueError as exc:
        raise InputError("purge options", [Problem("", str(exc))]) from None
    if not as_json:
        click.echo(database_line(settings))
    store = open_store(settings.database_url)
    try:
        with contextlib.ExitStack() as stack:
            out = (
                stack.enter_context(open(archive, "a", encoding="utf-8")) if archive and not dry_run else None
            )
            report = Purger(store).purge(age, chosen, workflow, out, dry_run, rest=settings.purge_rest)
    finally:
        store.dispose()
    if as_json:
        print_json(report.as_dict())
        return
    verb = "would purge" if dry_run else "purged"
    rows = ", ".join(f"{count} {name}" for name, count in report.rows.items() if name != "executions")
    click.echo(
        f"{verb} {report.executions} executions finished before {report.cutoff.isoformat()}"
        + (f" ({rows})" if rows else "")
    )
    if report.kept_running:
        click.echo(f"kept {report.kept_running} ended executions with a child still running")


@click.command("audit")
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@json_option
@click.pass_obj
def audit(settings: Settings, limit: int, as_json: bool) -> None:
    """Failed logins and refused API requests, newest first."""
    store = open_store(settings.database_url)
    try:
        records = Audit(store).recent(limit)
    finally:
        store.dispose()
    if as_json:
        print_json([{k: v for k, v in asdict(r).items() if k != "id"} for r in records])
        return
    for r in records:
        click.echo(f"{r.at.isoformat()}  {r.status}  {r.username or '-'}  {r.address}  {r.route}")


@click.group()
def keys() -> None:
    """The keys that seal secret values (WFE_ENCRYPTION_KEYS)."""


@keys.command("new")
def new_encryption_key() -> None:
    """Print a new key: put it first in WFE_ENCRYPTION_KEYS (keep the old ones after it until
    `wfe keys rotate` has run)."""
    click.echo(new_key())


@keys.command("rotate")
@json_option
@click.pass_obj
def rotate_keys(settings: Settings, as_json: bool) -> None:
    """Seal every stored secret again with the first key, a batch at a time; run it again after
    an interruption and it goes on. Then the old keys can be dropped."""
    chosen = settings.encryption_keys
    if chosen is None:
        raise ConfigurationError(NO_KEY)
    keyring = Keyring(chosen.get_secret_value())
    store = open_store(settings.database_url)
    rows: dict[str, int] = {}
    try:
        for table, changed in sealed.rewrite(store, keyring.rotated):
            rows[table] = rows.get(table, 0) + changed
    finally:
        store.dispose()
    if as_json:
        print_json({"rotated": rows})
        return
    counts = ", ".join(f"{n} {table}" for table, n in rows.items()) or "nothing"
    click.echo(f"sealed again with the first key: {counts}")


COMMANDS = [db, audit, keys]
