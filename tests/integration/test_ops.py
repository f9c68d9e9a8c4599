"""Operations on real processes: Flower's API, the workers' Prometheus endpoint, JSON logs,
and the Procfile run by honcho."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT
from tests.integration.conftest import FAST, Cluster, broker_settings, start_cluster
from workflow_engine.definitions import WorkflowBuilder
from workflow_engine.engine import Engine
from workflow_engine.processes import settings_env
from workflow_engine.settings import Settings

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, timeout: float = 30, **kwargs: object) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        try:
            response = httpx.get(url, timeout=2, **kwargs)  # type: ignore[arg-type]
            if response.status_code < 500:
                return response
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} did not answer")
        time.sleep(0.25)


@pytest.fixture(scope="module")
def ops(redis_url: str, pg_module_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A cluster logging JSON, with a worker metrics endpoint and Flower."""
    metrics_port = free_port()
    settings = Settings(
        database_url=pg_module_url,
        **broker_settings("redis", redis_url),
        **{**FAST, "log_format": "json", "task_events": True},
        metrics_port=metrics_port,
    )
    cluster = start_cluster(settings, tmp_path_factory.mktemp("ops"))
    try:
        yield cluster
    finally:
        cluster.processes.stop()
        cluster.engine.close()


def test_flower_reports_the_step_tasks_of_a_finished_execution(ops: Cluster) -> None:
    port = free_port()
    ops.processes.start_flower(port, "--basic-auth=ops:secret")
    auth = ("ops", "secret")
    wait_http(f"http://127.0.0.1:{port}/api/workers", auth=auth)
    time.sleep(2)  # Flower turns task events on in the workers
    ops.engine.register(WorkflowBuilder("flowered").agent("fetch", "echo").agent("store", "echo"))
    execution = ops.engine.start("flowered").id
    assert ops.wait(execution).status == "completed"
    deadline = time.monotonic() + 30
    found: dict[str, object] = {}
    while time.monotonic() < deadline and not found:
        tasks = httpx.get(
            f"http://127.0.0.1:{port}/api/tasks", params={"limit": 500}, auth=auth, timeout=5
        ).json()
        found = next(
            (
                t
                for t in tasks.values()
                if t.get("name") == "flowered.store" and execution in str(t.get("args"))
            ),
            {},
        )
        time.sleep(0.5)
    assert found, "Flower never showed the step task"
    assert found["state"] == "SUCCESS"
    assert found["uuid"] == f"{execution}:store:1"


def test_workers_expose_prometheus_metrics(ops: Cluster) -> None:
    ops.engine.register(
        WorkflowBuilder("measured").agent("a", "echo").agent("b", "flaky", retry={"initial_delay": 0.1})
    )
    assert ops.wait(ops.engine.start("measured").id).status == "completed"
    text = wait_http(f"http://127.0.0.1:{ops.settings.metrics_port}/metrics").text
    samples = {
        line.split(" ")[0]: float(line.split(" ")[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }
    assert samples['wfe_step_attempts_total{agent="echo",status="succeeded"}'] >= 1
    assert samples['wfe_step_attempts_total{agent="flaky",status="retrying"}'] >= 1
    assert samples['wfe_step_retries_total{agent="flaky"}'] >= 1
    assert samples['wfe_step_duration_seconds_count{agent="echo"}'] >= 1
    assert any(key.startswith("wfe_step_queue_wait_seconds_bucket") for key in samples)


def test_worker_logs_are_json_lines_with_execution_and_step(ops: Cluster) -> None:
    ops.engine.register(WorkflowBuilder("logged").agent("talk", "chatty"))
    execution = ops.engine.start("logged").id
    assert ops.wait(execution).status == "completed"
    worker = next(p for p in ops.processes.processes if p.name == "worker0")
    lines = [line for line in worker.log.read_text().splitlines() if line.strip()]
    documents = [json.loads(line) for line in lines]  # every line is JSON
    mine = [d for d in documents if d["message"] == "working on talk"]
    assert len(mine) == 1
    assert mine[0]["execution_id"] == execution and mine[0]["step"] == "talk" and mine[0]["attempt"] == 1


def test_a_workflow_runs_through_honcho_and_the_procfile(
    redis_url: str, pg_databases: object, tmp_path: Path
) -> None:
    database = pg_databases.create()  # type: ignore[attr-defined]
    settings = Settings(database_url=database, **broker_settings("redis", redis_url), **FAST)
    env_path = tmp_path / "local.env"
    env_path.write_text("".join(f"{k}='{v}'\n" for k, v in settings_env(settings).items()))
    base = free_port()
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    with (tmp_path / "honcho.log").open("wb") as log:
        honcho = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "honcho",
                "start",
                "-f",
                str(ROOT / "Procfile"),
                "-e",
                str(env_path),
                "-d",
                str(ROOT),
                "-p",
                str(base),
                "api",
                "coordinator",
                "worker",
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        assert wait_http(f"http://127.0.0.1:{base}/health").json()["database"] == "ok"
        with Engine.from_settings(settings) as engine:
            engine.register(WorkflowBuilder("honcho").agent("a", "echo").agent("b", "echo"))
            execution = engine.start("honcho").id
            assert engine.wait(execution, timeout=60).status == "completed"
    finally:
        os.killpg(honcho.pid, signal.SIGTERM)
        try:
            honcho.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(honcho.pid, signal.SIGKILL)
            honcho.wait(5)
