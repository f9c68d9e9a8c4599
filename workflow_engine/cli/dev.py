"""`wfe dev`: the whole engine on one machine for development, in one command.

It migrates the database, makes a local admin on first run, starts a coordinator and a worker
(child processes, as `wfe run` does) and serves the API and the monitor in this process, on
loopback only, with a sign-in link made for this run. When a file of the agent modules changes,
the worker and the coordinator are started again, so the next step runs the new code. Ctrl-C stops everything.
"""

from __future__ import annotations

import importlib.util
import secrets
import tempfile
import threading
from collections.abc import Iterable
from pathlib import Path

import click

from workflow_engine import logs
from workflow_engine.cli.output import importable_cwd
from workflow_engine.cli.settings import database_line
from workflow_engine.errors import ConfigurationError, UserNotFound
from workflow_engine.processes import LocalCluster, Process
from workflow_engine.settings import Settings
from workflow_engine.store import migrate
from workflow_engine.store.opening import open_store
from workflow_engine.users import create_user

ADMIN = "dev"
HOST = "127.0.0.1"  # a sign-in link opens an admin session: never beyond this machine


def module_files(modules: Iterable[str]) -> list[Path]:
    """The source files of ``modules`` and the Python files beside them (helpers they import)."""
    files: set[Path] = set()
    for name in modules:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError) as exc:
            raise ConfigurationError(f"cannot find agent module {name!r}: {exc}") from None
        if spec is None or not spec.origin or not spec.origin.endswith(".py"):
            raise ConfigurationError(f"cannot find agent module {name!r} from {Path.cwd()}")
        origin = Path(spec.origin)
        files.update(origin.parent.glob("*.py"))
    return sorted(files)


class Watch:
    """The files' modification times, compared at each look."""

    def __init__(self, files: list[Path]) -> None:
        self.files = files
        self.seen = self._times()

    def _times(self) -> dict[Path, float | None]:
        times: dict[Path, float | None] = {}
        for path in self.files:
            try:
                times[path] = path.stat().st_mtime_ns
            except OSError:
                times[path] = None
        return times

    def changed(self) -> list[Path]:
        now = self._times()
        changed = [path for path in self.files if now[path] != self.seen[path]]
        self.seen = now
        return changed


def ensure_admin(settings: Settings) -> str | None:
    """Create the local admin on first run; its password, once, or None when it exists."""
    store = open_store(settings.database_url)
    try:
        try:
            store.get_user(ADMIN)
            return None
        except UserNotFound:
            password = secrets.token_urlsafe(12)
            create_user(store, ADMIN, password, "admin")
            return password
    finally:
        store.dispose()


def reload_worker(cluster: LocalCluster, watch: Watch, stopping: threading.Event, interval: float) -> None:
    """Start the worker and the coordinator again whenever an agent file changes, and say when one
    of them stopped on its own, until ``stopping`` is set."""
    reported: Process | None = None
    while not stopping.wait(interval):
        dead = cluster.failed()
        if dead is not None and dead is not reported:
            reported = dead
            click.echo(f"wfe dev: the {dead.name} stopped:\n{dead.tail()}", err=True)
        changed = watch.changed()
        if not changed:
            continue
        names = ", ".join(
            str(path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path) for path in changed
        )
        # the coordinator imports the agents too (it may run a step in place): both start again
        cluster.stop()
        cluster.processes.clear()
        if stopping.is_set():
            return
        cluster.start()
        reported = None
        click.echo(f"wfe dev: {names} changed: the worker and the coordinator started again")


@click.command()
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option("--agents", help="Agent modules, comma-separated (default: WFE_AGENT_MODULES).")
@click.option("--concurrency", "-c", type=click.IntRange(1, 64), default=2, show_default=True)
@click.option(
    "--reload/--no-reload",
    default=True,
    show_default=True,
    help="Restart the worker and coordinator when agent files change.",
)
@click.option("--reload-interval", type=click.FloatRange(0.05, 60), default=0.5, hidden=True)
@click.pass_obj
def dev(
    settings: Settings,
    port: int,
    agents: str | None,
    concurrency: int,
    reload: bool,
    reload_interval: float,
) -> None:
    """Run the coordinator, a worker, the API and the monitor on this machine, for development.

    On the embedded default (SQLite and a broker folder next to it) nothing needs installing.
    The first run creates an admin named `dev`; each run prints a sign-in link for the monitor.
    The worker and the coordinator start again when a file of the agent modules changes.
    Ctrl-C stops everything.
    """
    import uvicorn

    from workflow_engine.api.app import create_app
    from workflow_engine.ui import signin

    importable_cwd()
    if agents is not None:
        settings = settings.with_overrides(
            agent_modules=tuple(a.strip() for a in agents.split(",") if a.strip())
        )
    logs.configure("WARNING", settings.log_format)
    watched = module_files(settings.agent_modules) if reload else []
    click.echo(database_line(settings))
    migrate.upgrade(settings.database_url)
    password = ensure_admin(settings)
    app = create_app(settings)
    secret = signin.new_secret()
    signin.install(app, ADMIN, secret)
    server = uvicorn.Server(uvicorn.Config(
            app, host=HOST, port=port, log_level="warning", log_config=None, proxy_headers=False
        ))
    log_dir = Path(tempfile.mkdtemp(prefix="wfe-dev-"))
    cluster = LocalCluster(settings, log_dir, concurrency=concurrency, cwd=Path.cwd()).start()
    stopping = threading.Event()
    if watched:
        watch = Watch(watched)
        threading.Thread(
            target=reload_worker, args=(cluster, watch, stopping, reload_interval), daemon=True, name="reload"
        ).start()

    def announce() -> None:  # once the port is bound: where to go
        while not server.started:
            if stopping.wait(0.05):
                return
        bound = server.servers[0].sockets[0].getsockname()[1] if server.servers else port
        base = f"http://{HOST}:{bound}"
        if password is not None:
            click.echo(f"created the admin {ADMIN!r} (password {password}, shown once: for the REST API)")
        click.echo(f"monitor: {base}{signin.PATH}/{secret}   (signs you in as {ADMIN}; this run only)")
        click.echo(f"API docs: {base}/api/docs   logs of the worker and coordinator: {log_dir}")
        if watched:
            click.echo(
                f"watching {len(watched)} agent files: "
                "the worker and the coordinator start again when one changes"
            )
        click.echo("Ctrl-C stops everything")

    threading.Thread(target=announce, daemon=True, name="announce").start()
    try:
        server.run()  # on Ctrl-C uvicorn shuts down, then raises the signal again
    except KeyboardInterrupt:
        pass
    finally:
        stopping.set()
        cluster.stop()
        _report_crash(cluster.processes)
    click.echo("wfe dev: stopped")


def _report_crash(processes: list[Process]) -> None:
    for process in processes:
        if process.popen is not None and process.popen.returncode not in (0, None, -15):
            click.echo(
                f"wfe dev: the {process.name} stopped with {process.popen.returncode}:\n{process.tail()}",
                err=True,
            )


COMMANDS = [dev]
