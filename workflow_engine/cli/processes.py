"""`wfe worker` and `wfe coordinator`: the engine's long-running processes."""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import sys
from typing import Any

import click

from workflow_engine import logs
from workflow_engine.agents import load_modules
from workflow_engine.cli.output import importable_cwd, json_option, print_json
from workflow_engine.cli.settings import process_line
from workflow_engine.definitions.model import QUEUE_NAME
from workflow_engine.settings import LOG_LEVELS, Settings
from workflow_engine.store.opening import open_store

log = logging.getLogger(__name__)


def _split(text: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (text or "").split(",") if part.strip())


_QUEUE = re.compile(QUEUE_NAME)  # as a definition's `queue:` is checked


def _check_queues(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    bad = [name for name in _split(value) if not _QUEUE.match(name)]
    if bad:
        raise click.BadParameter(f"{bad[0]!r}: a queue name is letters, digits and '_.-', at most 100")
    return value


loglevel_option = click.option(
    "--loglevel",
    "-l",
    type=click.Choice(LOG_LEVELS, case_sensitive=False),
    help="Log level (default: WFE_LOG_LEVEL).",
)


@click.command()
@click.option("--concurrency", "-c", type=click.IntRange(1, 512), help="Parallel step executions.")
@click.option("--agents", help="Agent modules to load, comma-separated (default: WFE_AGENT_MODULES).")
@click.option(
    "--tasks",
    help="Modules defining Celery tasks that task steps run, comma-separated (default: WFE_TASK_MODULES).",
)
@click.option("--queues", "-Q", callback=_check_queues, help="Extra step queues to consume, comma-separated.")
@click.option(
    "--pool", "-P", type=click.Choice(["prefork", "threads", "solo"]), default="prefork", show_default=True
)
@click.option(
    "--hostname",
    "-n",
    help="Celery node name, as Celery's -n (%h: this host). Default: worker-<pid>@<host>, "
    "unique on the host.",
)
@loglevel_option
@click.option("--metrics-port", type=click.IntRange(1, 65535), help="Serve Prometheus metrics on this port.")
@click.pass_obj
def worker(
    settings: Settings,
    concurrency: int | None,
    agents: str | None,
    tasks: str | None,
    queues: str | None,
    pool: str,
    hostname: str | None,
    loglevel: str | None,
    metrics_port: int | None,
) -> None:
    """Run a Celery worker that executes steps with the loaded agents and Celery tasks."""
    port = metrics_port or settings.metrics_port
    if port:
        from workflow_engine.worker import exporter

        exporter.prepare()
        exporter.serve_when_ready(port, settings.metrics_address)
    importable_cwd()
    if agents is not None:
        settings = settings.with_overrides(agent_modules=_split(agents))
    if tasks is not None:
        settings = settings.with_overrides(task_modules=_split(tasks))
    logs.configure(loglevel or settings.log_level, settings.log_format)
    log.info("%s", process_line(settings))
    load_modules(settings.agent_modules)
    store = open_store(settings.database_url, pool_size=1)  # fail now, clearly, if the database is unusable
    from workflow_engine.celery_tasks import load_tasks
    from workflow_engine.worker.app import node_name, queue_name
    from workflow_engine.worker.tasks import worker_app

    load_tasks(settings.task_modules)

    app = worker_app(settings)
    app.node_name = node_name("worker", hostname)
    names = [settings.steps_queue, *(queue_name(settings, q) for q in _split(queues))]
    concurrency = concurrency or settings.worker_concurrency
    _report_capacity(app, store, settings, pool, concurrency)
    _run_celery_worker(
        app,
        settings,
        queues=names,
        pool=pool,
        concurrency=concurrency,
        loglevel=loglevel,
    )


@click.command()
@click.option("--once", is_flag=True, help="Run one reconciliation pass and exit.")
@click.option("--concurrency", "-c", type=click.IntRange(1, 64), default=4, show_default=True)
@click.option(
    "--hostname",
    "-n",
    help="Celery node name, as Celery's -n (%h: this host). Default: coordinator-<pid>@<host>, "
    "unique on the host.",
)
@loglevel_option
@json_option
@click.pass_obj
def coordinator(
    settings: Settings,
    once: bool,
    concurrency: int,
    hostname: str | None,
    loglevel: str | None,
    as_json: bool,
) -> None:
    """Start executions sent as Celery messages, and reconcile from the database.

    Several coordinators may run side by side; every repair is idempotent.
    """
    importable_cwd()
    logs.configure(loglevel or settings.log_level, settings.log_format)
    log.info("%s", process_line(settings))
    from workflow_engine.coordinator.reconciler import Reconciler
    from workflow_engine.worker.app import node_name
    from workflow_engine.worker.runtime import runtime_of
    from workflow_engine.worker.tasks import worker_app

    app = worker_app(settings)
    app.node_name = node_name("coordinator", hostname)
    if once:
        report = Reconciler(runtime_of(app).coordinator, settings).tick()
        if as_json:
            print_json(report.as_dict())
        else:
            click.echo(", ".join(f"{k}: {v}" for k, v in report.as_dict().items() if k != "errors"))
            for error in report.errors:
                click.echo(f"error: {error}", err=True)
        return
    open_store(settings.database_url).dispose()
    _run_background_with_worker(app, settings)
    queues = [settings.coordinator_queue, *([settings.intake_queue] if settings.intake_queue else [])]
    _run_celery_worker(
        app,
        settings,
        queues=queues,
        pool="threads",
        concurrency=concurrency,
        loglevel=loglevel,
    )


def _report_capacity(app: Any, store: Any, settings: Settings, pool: str, concurrency: int | None) -> None:
    """Report how many steps this worker runs at once before it takes its first one (fan-outs
    are sized by what the live workers report), then keep the report fresh with the worker's
    heartbeat. In a prefork pool the worker's own process reports the slots and the pool
    processes only their runs; with threads, the one process reports both."""
    from celery import signals

    from workflow_engine.agents import REGISTRY
    from workflow_engine.worker.heartbeat import Heartbeat
    from workflow_engine.worker.runtime import begin, leave, runtime_of

    slots = 1 if pool == "solo" else concurrency or os.cpu_count() or 1
    if pool == "prefork":
        app.process_slots = 0
        agents = sorted(REGISTRY.names())
        heartbeat = Heartbeat(
            store, agents, [settings.steps_queue], settings.heartbeat_interval, slots, app.node_name
        )
        # a pool process beats from its start, and one that ends cleanly (replaced, or stopping
        # with the worker) takes its heartbeat record with it: the workers page shows no ghost
        signals.worker_process_init.connect(lambda **_: begin(app), weak=False)
        signals.worker_process_shutdown.connect(lambda **_: leave(app), weak=False)
    else:
        app.process_slots = slots
        heartbeat = runtime_of(app).heartbeat
    heartbeat.beat()
    store.dispose()  # nothing open when the pool forks; the heartbeat reconnects after
    if pool == "prefork":  # a pool process started later must not share the heartbeat's session
        os.register_at_fork(after_in_child=lambda: store.engine.dispose(close=False))
    signals.worker_ready.connect(lambda **_: heartbeat.start(), weak=False)
    signals.worker_shutdown.connect(lambda **_: heartbeat.leave(), weak=False)


def _run_celery_worker(
    app: Any,
    settings: Settings,
    *,
    queues: list[str],
    pool: str,
    concurrency: int | None,
    loglevel: str | None,
) -> None:
    """A Celery worker named ``app.node_name``, consuming ``queues``; no banner when logging
    JSON (every line parses)."""
    options: dict[str, Any] = {
        "hostname": app.node_name,
        "queues": queues,
        "pool_cls": pool,
        "loglevel": (loglevel or settings.log_level).upper(),
        "without_gossip": True,
        "without_mingle": True,
        "quiet": settings.log_format == "json",
    }
    if concurrency:
        options["concurrency"] = concurrency
    worker = app.Worker(**options)
    worker.start()
    sys.exit(worker.exitcode)


@click.command(context_settings={"ignore_unknown_options": True})
@click.option("--port", type=click.IntRange(1, 65535), default=5555, show_default=True)
@click.option("--address", default="127.0.0.1", show_default=True)
@click.argument("flower_args", nargs=-1, type=click.UNPROCESSED)
@click.pass_obj
def flower(settings: Settings, port: int, address: str, flower_args: tuple[str, ...]) -> None:
    """Run Flower on the engine's Celery app; it turns task events on in the workers.

    Step tasks are named after their workflow and step; their arguments carry the execution id.
    Extra arguments go to Flower (for example --basic-auth=user:password). Flower shows every
    user's task arguments, results and tracebacks: it starts without authentication (Flower's
    --basic-auth or --auth, or FLOWER_BASIC_AUTH / FLOWER_AUTH) only on a loopback address.
    """
    address = _flower_option(flower_args, "address") or address  # (Flower takes the last one)
    authenticated = any(_flower_option(flower_args, name) for name in ("basic_auth", "auth")) or any(
        os.environ.get(name) for name in ("FLOWER_BASIC_AUTH", "FLOWER_AUTH")
    )
    if not authenticated and not _loopback(address):
        click.echo(
            f"wfe flower: refusing to serve every user's tasks on {address or 'all addresses'} "
            "without authentication: give --basic-auth=user:password (or FLOWER_BASIC_AUTH), or "
            "--address=127.0.0.1",
            err=True,
        )
        sys.exit(2)
    importable_cwd()
    logs.configure(settings.log_level, settings.log_format)
    log.info("%s", process_line(settings))
    if not authenticated:
        log.warning("flower is unauthenticated: it listens on %s (loopback) only", address)
    from workflow_engine.worker.tasks import worker_app

    app = worker_app(settings)
    app.start(["flower", f"--port={port}", f"--address={address}", "--enable-events", *flower_args])


def _flower_option(arguments: tuple[str, ...], name: str) -> str | None:
    """The value of Flower's option ``name`` (``--name=value``, ``--name value``, ``-`` or
    ``_`` in the name) among ``arguments``: the last given, as Flower takes it."""
    spellings = {f"--{name}", f"--{name.replace('_', '-')}"}
    found: str | None = None
    for position, argument in enumerate(arguments):
        option, equals, value = argument.partition("=")
        if option in spellings:
            following = arguments[position + 1 : position + 2]
            found = value if equals else (following[0] if following else "")
    return found


def _loopback(address: str) -> bool:
    """Whether ``address`` (Flower's --address; empty: every address) is a loopback one."""
    if address.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        return False


def _run_background_with_worker(app: Any, settings: Settings) -> None:
    """The reconciler and the scheduler, each a thread of the coordinator once it is ready."""
    from celery import signals

    from workflow_engine.coordinator.reconciler import Reconciler
    from workflow_engine.coordinator.scheduler import Scheduler
    from workflow_engine.worker.runtime import runtime_of

    running: list[Reconciler | Scheduler] = []

    @signals.worker_ready.connect(weak=False)
    def start(**_: Any) -> None:
        coordinator = runtime_of(app).coordinator
        running.extend([Reconciler(coordinator, settings), Scheduler(coordinator, settings)])
        for loop in running:
            loop.start_thread()

    @signals.worker_shutting_down.connect(weak=False)
    def stop(**_: Any) -> None:
        for loop in running:
            loop.stop()


@click.command()
@click.option("--host", help="Address to listen on (default: WFE_API_HOST).")
@click.option("--port", type=click.IntRange(0, 65535), help="Port (default: WFE_API_PORT).")
@loglevel_option
@click.pass_obj
def api(settings: Settings, host: str | None, port: int | None, loglevel: str | None) -> None:
    """Serve the REST API (docs at /api/docs) and the monitor; over HTTPS when given a
    certificate and its key (WFE_API_TLS_CERT, WFE_API_TLS_KEY)."""
    import uvicorn

    from workflow_engine.api.app import create_app

    level = (loglevel or settings.log_level).lower()
    logs.configure(level, settings.log_format)
    log.info("%s", process_line(settings))
    app = create_app(settings)
    uvicorn.run(
        app,
        host=host or settings.api_host,
        port=settings.api_port if port is None else port,
        log_level=level,
        log_config=None,
        proxy_headers=bool(settings.trusted_proxies),  # X-Forwarded-* believed from these only
        forwarded_allow_ips=list(settings.trusted_proxies),
        ssl_certfile=settings.api_tls_cert,
        ssl_keyfile=settings.api_tls_key,
    )


COMMANDS = [worker, coordinator, api, flower]
