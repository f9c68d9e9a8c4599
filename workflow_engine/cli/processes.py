"""`wfe worker` and `wfe coordinator`: the engine's long-running processes."""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from workflow_engine import logs
from workflow_engine.agents import load_modules
from workflow_engine.cli.output import json_option, print_json
from workflow_engine.engine import open_store
from workflow_engine.settings import Settings


def _importable_cwd() -> None:
    # agent modules and workers/ are found from where the process is started, as with celery -A
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)


def _split(text: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (text or "").split(",") if part.strip())


@click.command()
@click.option("--concurrency", "-c", type=click.IntRange(1, 512), help="Parallel step executions.")
@click.option("--agents", help="Agent modules to load, comma-separated (default: WFE_AGENT_MODULES).")
@click.option("--queues", "-Q", help="Extra step queues to consume, comma-separated.")
@click.option(
    "--pool", "-P", type=click.Choice(["prefork", "threads", "solo"]), default="prefork", show_default=True
)
@click.option("--hostname", "-n", help="Worker node name (Celery's -n).")
@click.option("--loglevel", "-l", help="Log level (default: WFE_LOG_LEVEL).")
@click.pass_obj
def worker(
    settings: Settings,
    concurrency: int | None,
    agents: str | None,
    queues: str | None,
    pool: str,
    hostname: str | None,
    loglevel: str | None,
) -> None:
    """Run a Celery worker that executes steps with the loaded agents."""
    _importable_cwd()
    if agents is not None:
        settings = settings.with_overrides(agent_modules=_split(agents))
    logs.configure(loglevel or settings.log_level, settings.log_format)
    load_modules(settings.agent_modules)
    open_store(settings).dispose()  # fail now, clearly, if the database is unusable
    from workflow_engine.worker.app import create_celery_app, queue_name

    app = create_celery_app(settings)
    names = [settings.steps_queue, *(queue_name(settings, q) for q in _split(queues))]
    argv = ["worker", "-Q", ",".join(names), "-P", pool, "-l", (loglevel or settings.log_level).upper()]
    argv += ["--without-gossip", "--without-mingle"]
    workers = concurrency or settings.worker_concurrency
    if workers:
        argv += ["-c", str(workers)]
    if hostname:
        argv += ["-n", hostname]
    app.worker_main(argv)


@click.command()
@click.option("--once", is_flag=True, help="Run one reconciliation pass and exit.")
@click.option("--concurrency", "-c", type=click.IntRange(1, 64), default=4, show_default=True)
@click.option("--hostname", "-n", help="Node name (Celery's -n).")
@click.option("--loglevel", "-l", help="Log level (default: WFE_LOG_LEVEL).")
@json_option
@click.pass_obj
def coordinator(
    settings: Settings, once: bool, concurrency: int, hostname: str | None, loglevel: str | None, as_json: bool
) -> None:
    """Start executions sent as Celery messages, and reconcile from the database.

    Several coordinators may run side by side; every repair is idempotent.
    """
    _importable_cwd()
    logs.configure(loglevel or settings.log_level, settings.log_format)
    from workflow_engine.coordinator.reconciler import Reconciler
    from workflow_engine.worker.app import create_celery_app

    app = create_celery_app(settings)
    if once:
        report = Reconciler(app.runtime().coordinator, settings).tick()
        if as_json:
            print_json(report.as_dict())
        else:
            click.echo(", ".join(f"{k}: {v}" for k, v in report.as_dict().items() if k != "errors"))
            for error in report.errors:
                click.echo(f"error: {error}", err=True)
        return
    open_store(settings).dispose()
    _run_reconciler_with_worker(app, settings)
    queues = [settings.coordinator_queue, *([settings.intake_queue] if settings.intake_queue else [])]
    argv = ["worker", "-Q", ",".join(queues), "-P", "threads", "-c", str(concurrency)]
    argv += ["-l", (loglevel or settings.log_level).upper(), "--without-gossip", "--without-mingle"]
    if hostname:
        argv += ["-n", hostname]
    app.worker_main(argv)


def _run_reconciler_with_worker(app: Any, settings: Settings) -> None:
    from celery import signals

    from workflow_engine.coordinator.reconciler import Reconciler

    holder: dict[str, Reconciler] = {}

    @signals.worker_ready.connect(weak=False)
    def start(**_: Any) -> None:
        reconciler = Reconciler(app.runtime().coordinator, settings)
        holder["reconciler"] = reconciler
        reconciler.start_thread()

    @signals.worker_shutting_down.connect(weak=False)
    def stop(**_: Any) -> None:
        if "reconciler" in holder:
            holder["reconciler"].stop()


@click.command()
@click.option("--host", help="Address to listen on (default: WFE_API_HOST).")
@click.option("--port", type=click.IntRange(0, 65535), help="Port (default: WFE_API_PORT).")
@click.option("--loglevel", "-l", help="Log level (default: WFE_LOG_LEVEL).")
@click.pass_obj
def api(settings: Settings, host: str | None, port: int | None, loglevel: str | None) -> None:
    """Serve the REST API (docs at /api/docs)."""
    import uvicorn

    from workflow_engine.api.app import create_app

    level = (loglevel or settings.log_level).lower()
    logs.configure(level, settings.log_format)
    app = create_app(settings)
    uvicorn.run(
        app,
        host=host or settings.api_host,
        port=settings.api_port if port is None else port,
        log_level=level,
        log_config=None,
        proxy_headers=True,
    )


COMMANDS = [worker, coordinator, api]
