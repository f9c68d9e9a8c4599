"""The Celery app, configured from settings: what publishing needs. Nothing is built at import
time; the tasks a worker runs are added by :func:`workflow_engine.worker.tasks.worker_app`."""

from __future__ import annotations

import os
import socket
from typing import Any

from celery import Celery, states
from celery.backends.base import DisabledBackend
from celery.utils.nodenames import default_nodename, host_format

from workflow_engine.settings import Settings
from workflow_engine.worker import embedded
from workflow_engine.worker.events import TaskEventsState, WatchTaskEvents

# ETA messages are held by the worker that prefetched them; Redis gives an unacknowledged
# message to another consumer after the visibility timeout, so keep it well above the
# furthest ETA the coordinator publishes (``eta_horizon``; later ones wait in the database).
MIN_VISIBILITY_TIMEOUT = 3600
# Bounds on talking to the broker, so that a broker that does not answer (or answers in another
# protocol: rediss:// to a plain Redis) fails a publish within seconds instead of hanging it.
# The seconds to connect, and (Redis) to wait for any reply, the TLS handshake's included:
CONNECT_TIMEOUT = 5.0
REDIS_SOCKET_TIMEOUT = 10.0
# a publish is tried once more after a failure; the reconciler publishes later what still failed
PUBLISH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0.2, "interval_step": 0.5, "interval_max": 1}


def node_name(role: str, given: str | None = None) -> str:
    """The Celery node name of this process: ``given`` as Celery's ``-n`` reads it (``%h`` is the
    host), else ``<role>-<pid>@<host>``, which no other live process of the host holds."""
    if given:
        return str(host_format(default_nodename(given)))
    return f"{role}-{os.getpid()}@{socket.gethostname()}"


class NoResults(DisabledBackend):  # type: ignore[misc]
    """No result backend (the database holds every outcome). Celery's revoke handler asks each
    node for the state of the tasks it revokes; without a backend that asking logs a warning in
    every process at every cancel, so the state of a task here is simply unknown: pending."""

    def get_state(self, task_id: str) -> str:
        return str(states.PENDING)


def broker_options(settings: Settings) -> tuple[str, dict[str, Any]]:
    """The broker URL and transport options: the embedded default is a folder next to the DB."""
    if settings.embedded_broker:
        folder = settings.embedded_broker_dir.resolve()
        control = folder / "control"
        control.mkdir(parents=True, exist_ok=True)
        return f"{embedded.SCHEME}://", {
            "data_folder_in": str(folder),
            "data_folder_out": str(folder),
            "control_folder": str(control),
            "polling_interval": settings.embedded_poll_interval,
        }
    options: dict[str, Any] = {}
    if settings.broker_url.startswith(("redis://", "rediss://", "redis+socket://", "sentinel://")):
        options["visibility_timeout"] = max(MIN_VISIBILITY_TIMEOUT, int(settings.eta_horizon * 4))
        options["socket_connect_timeout"] = CONNECT_TIMEOUT
        options["socket_timeout"] = REDIS_SOCKET_TIMEOUT
    options.update(settings.broker_transport_options)
    return settings.broker_url, options


class EngineCelery(Celery):  # type: ignore[misc]
    """A Celery app that knows the engine's settings (and, in a worker, its process's runtime:
    see :func:`workflow_engine.worker.runtime.runtime_of`)."""

    def __init__(self, settings: Settings, **kwargs: Any) -> None:
        super().__init__("workflow_engine", set_as_current=False, **kwargs)
        self.settings = settings
        # whether the worker sends task events now: Flower switches them on at run time
        self.live_task_events = TaskEventsState(settings.task_events)
        # steps this process runs at once as its heartbeat reports them: a thread pool's size,
        # 0 for a prefork pool's processes (the worker's own process reports the pool's size);
        # the coordinator sizes fan-outs by the sum over live workers (delivery.conclude)
        self.process_slots = 1
        self.runtime: Any = None  # (pid, Runtime) once made in this process
        # the Celery node this process is part of, once it runs as one: its pool processes
        # inherit it, and their heartbeats are named after it (see worker/nodes.py)
        self.node_name: str | None = None


def queue_name(settings: Settings, queue: str | None) -> str:
    return f"{settings.queue_prefix}.{queue}" if queue else settings.steps_queue


def create_celery_app(settings: Settings) -> EngineCelery:
    url, transport_options = broker_options(settings)
    backend = settings.result_backend or f"{NoResults.__module__}:{NoResults.__name__}"
    app = EngineCelery(settings, broker=url, backend=backend)
    app.conf.update(
        broker_transport_options=transport_options,
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=CONNECT_TIMEOUT,
        task_publish_retry_policy=PUBLISH_RETRY_POLICY,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_ignore_result=settings.result_backend is None,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_default_queue=settings.steps_queue,
        task_routes={"wfe.start_workflow": {"queue": settings.coordinator_queue}},
        task_create_missing_queues=True,
        worker_disable_rate_limits=True,
        worker_hijack_root_logger=False,
        # task events let Flower follow step tasks; off unless a worker starts with them or
        # Flower turns them on (remote control), which WatchTaskEvents follows for steps run in place
        worker_send_task_events=settings.task_events,
        task_send_sent_event=settings.task_events,
        enable_utc=True,
        timezone="UTC",
    )
    app.steps["consumer"].add(WatchTaskEvents)
    return app
