"""Processes started with their default names on one host, on RabbitMQ: each is a Celery node of
its own (RabbitMQ lets one connection alone consume a node's remote-control queue, so two
processes under one name cannot both run), `wfe workers` shows one entry per worker node, and
their logs stay quiet at start and at a cancel."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from kombu import Connection

from tests.conftest import ROOT
from tests.integration.conftest import FAST, Cluster, broker_settings
from workflow_engine.definitions import WorkflowBuilder
from workflow_engine.engine import Engine
from workflow_engine.processes import LocalCluster, Process, settings_env
from workflow_engine.settings import Settings
from workflow_engine.worker.app import create_celery_app

pytestmark = [pytest.mark.slow, pytest.mark.long]


def start(cluster: LocalCluster, name: str, *args: str) -> Process:
    """``wfe ARGS`` as an operator types it: no ``--hostname``."""
    argv = [sys.executable, "-m", "workflow_engine", *args]
    process = Process(name, argv, cluster.env, cluster.log_dir / f"{name}.log", cluster.cwd).start()
    cluster.processes.append(process)
    return process


@pytest.fixture(scope="module")
def unnamed(amqp_url: str, pg_module_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A coordinator and two prefork workers (2 processes each) with default names."""
    settings = Settings(database_url=pg_module_url, **broker_settings("amqp", amqp_url), **FAST)
    processes = LocalCluster(settings, tmp_path_factory.mktemp("unnamed"), cwd=ROOT)
    start(processes, "coordinator", "coordinator")
    for index in range(2):
        start(processes, f"worker{index}", "worker", "--concurrency", "2")
    cluster = Cluster(settings, Engine.from_settings(settings), processes, processes.log_dir)
    try:
        yield cluster
    finally:
        processes.stop()
        cluster.engine.close()
        with Connection(amqp_url) as connection:  # leave no queue behind on the shared broker
            channel = connection.default_channel
            for queue in (settings.steps_queue, settings.coordinator_queue, settings.intake_queue):
                channel.queue_delete(queue)


def wfe_workers(cluster: Cluster) -> list[dict[str, Any]]:
    env = {**os.environ, **settings_env(cluster.settings)}
    done = subprocess.run(
        [sys.executable, "-m", "workflow_engine", "workers", "--json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    found: list[dict[str, Any]] = json.loads(done.stdout)
    return found


def process(cluster: Cluster, name: str) -> Process:
    return next(p for p in cluster.processes.processes if p.name == name)


def process_running(cluster: Cluster, execution_id: str) -> Process:
    """The worker whose log says it received the execution's first step."""
    received = f"Task names-slow.a[{execution_id}:a:1] received"
    return next(p for p in cluster.processes.processes if received in p.tail(400))


def run_fan(cluster: Cluster, width: int = 6) -> None:
    """A fan-out started by a plain Celery message, which only the coordinator consumes."""
    engine = cluster.engine
    builder = WorkflowBuilder("names-fan").agent("start", "echo")
    branches = [f"b{i}" for i in range(width)]
    for branch in branches:
        builder.agent(branch, "echo", after="start", config={"sleep": 0.2})
    engine.register(builder.agent("join", "echo", after=branches))
    before = {v.id for v in engine.executions()[0]}
    client = Celery("other-service", broker=cluster.settings.broker_url)
    client.conf.task_default_queue = cluster.settings.intake_queue
    try:
        client.send_task("wfe.start_workflow", kwargs={"workflow": "names-fan"})
    finally:
        client.close()
    started: list[str] = []

    def new() -> bool:
        started.extend(v.id for v in engine.executions()[0] if v.id not in before)
        return bool(started)

    cluster.wait_for(new, timeout=60, what="the coordinator to start the execution")
    assert cluster.wait(started[0]).status == "completed"


def test_default_names_keep_a_coordinator_and_two_workers_apart_on_one_host(unnamed: Cluster) -> None:
    run_fan(unnamed)
    for name in ("coordinator", "worker0", "worker1"):
        assert process(unnamed, name).alive(), process(unnamed, name).tail()
    host = socket.gethostname()
    assert f"coordinator-{process(unnamed, 'coordinator').pid}@{host} ready" in process(
        unnamed, "coordinator"
    ).tail(200)
    expected = {f"worker-{process(unnamed, name).pid}@{host}" for name in ("worker0", "worker1")}
    # one entry per node, with its main process and its two pool processes
    unnamed.wait_for(
        lambda: {(e["node"], e["processes"]) for e in wfe_workers(unnamed)} == {(n, 3) for n in expected},
        what="one entry per node",
    )
    for entry in wfe_workers(unnamed):
        assert entry["state"] == "live" and entry["capacity"] == 2
        assert int(entry["node"].split("-")[1].split("@")[0]) in entry["pids"]  # its main process
        assert entry["queues"] == [unnamed.settings.steps_queue]


def test_a_pool_process_that_is_replaced_leaves_no_ghost(unnamed: Cluster) -> None:
    run_fan(unnamed)
    main = process(unnamed, "worker0").pid
    entry = next(e for e in wfe_workers(unnamed) if e["node"].startswith(f"worker-{main}@"))
    victim = next(pid for pid in entry["pids"] if pid != main)  # a pool process that ran a step
    os.kill(victim, signal.SIGKILL)
    run_fan(unnamed)  # the worker replaced it; its replacement runs steps

    def replaced() -> bool:
        entries = wfe_workers(unnamed)
        node = next(e for e in entries if e["node"] == entry["node"])
        return len(entries) == 2 and victim not in node["pids"] and node["processes"] == 3

    unnamed.wait_for(replaced, what="the killed pool process to leave its node, and its replacement to join")
    assert process(unnamed, "worker0").alive()


def test_the_logs_say_nothing_of_alembic_at_start_nor_of_a_result_backend_at_a_cancel(
    unnamed: Cluster,
) -> None:
    engine = unnamed.engine
    engine.register(WorkflowBuilder("names-slow").agent("a", "slow", config={"seconds": 30}))
    view = engine.start("names-slow")
    unnamed.wait_for(lambda: unnamed.step_status(view.id, "a") == "running", what="a running")
    env = {**os.environ, **settings_env(unnamed.settings)}
    cancel = subprocess.run(
        [sys.executable, "-m", "workflow_engine", "cancel", view.id],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert (cancel.returncode, cancel.stderr) == (0, "")
    unnamed.wait_for(lambda: "Terminating" in process_running(unnamed, view.id).tail(400), what="the stop")
    # each node handles its remote-control messages in order: once all answer a ping sent after
    # the revoke, each has handled the revoke (the coordinator, and the worker not running it)
    names = ("coordinator", "worker0", "worker1")
    host = socket.gethostname()
    nodes = {f"{n.rstrip('01')}-{process(unnamed, n).pid}@{host}" for n in names}
    app = create_celery_app(unnamed.settings)

    def all_answered() -> bool:
        return {node for reply in app.control.ping(timeout=1.0) for node in reply} >= nodes

    try:
        unnamed.wait_for(all_answered, what="every node to answer after the revoke")
    finally:
        app.close()
    for name in names:
        log = Path(process(unnamed, name).log).read_text()
        assert "alembic" not in log
        assert "No result backend" not in log and "Failed to mark task" not in log
