"""A worker's Prometheus endpoint (`wfe worker --metrics-port`), summed over its pool processes.

prometheus-client's multiprocess mode: every pool process writes its samples to files in one
folder, and the endpoint in the main process reads them all. The folder must be named before
prometheus_client is first imported, so :func:`prepare` runs first thing in the worker command.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
from typing import Any

ENV = "PROMETHEUS_MULTIPROC_DIR"
LOOPBACK = "127.0.0.1"  # (the endpoint has no authentication)

log = logging.getLogger(__name__)


def prepare() -> str:
    """Make a fresh samples folder for this worker and point prometheus-client at it."""
    if "prometheus_client" in sys.modules and not os.environ.get(ENV):
        raise RuntimeError("prometheus_client was imported before the metrics folder was set")
    folder = tempfile.mkdtemp(prefix="wfe-metrics-")
    os.environ[ENV] = folder
    return folder


def serve(port: int, host: str = LOOPBACK) -> bool:
    """Serve the samples of every pool process on ``host``:``port``; False (and a warning) if
    it is taken. It has no authentication: loopback unless the deployment says otherwise
    (WFE_METRICS_ADDRESS).

    A worker goes on without its endpoint rather than stopping: its steps matter more than its
    metrics. Several workers on one host need one port each (the Procfile gives each its $PORT).
    """
    from prometheus_client import CollectorRegistry, multiprocess, start_http_server

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    try:
        start_http_server(port, addr=host, registry=registry)
    except OSError as error:
        log.warning(
            "metrics port %s:%d cannot be bound (%s): this worker serves no Prometheus metrics; "
            "give each worker on a host its own port (--metrics-port)",
            host,
            port,
            error.strerror or error,
        )
        return False
    return True


def serve_when_ready(port: int, host: str = LOOPBACK) -> None:
    from celery import signals
    from prometheus_client import multiprocess

    @signals.worker_ready.connect(weak=False)
    def start(**_: Any) -> None:
        serve(port, host)

    @signals.worker_process_shutdown.connect(weak=False)
    def forget(pid: int | None = None, **_: Any) -> None:
        multiprocess.mark_process_dead(pid or os.getpid())

    @signals.worker_shutdown.connect(weak=False)
    def clean(**_: Any) -> None:
        shutil.rmtree(os.environ.get(ENV, ""), ignore_errors=True)
