"""Operations on real processes: Flower's API, the workers' Prometheus endpoint, JSON logs,
and the Procfile run by honcho."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from tests.conftest import ROOT
from tests.integration.conftest import FAST, Cluster, broker_settings, running_cluster
from tests.support import services
from tests.support.polling import poll
from workflow_engine.decisions.dispatch import Dispatch, task_id
from workflow_engine.definitions import WorkflowBuilder
from workflow_engine.engine import Engine
from workflow_engine.processes import LocalCluster, settings_env
from workflow_engine.secrets import new_key
from workflow_engine.settings import Settings
from workflow_engine.store import schema

pytestmark = pytest.mark.slow

KEY = new_key()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_base(offsets: tuple[int, ...]) -> int:
    """A free port ``base`` such that ``base + offset`` is free too for each of ``offsets`` (the
    ports honcho gives its other processes), so that none is taken by another process already."""
    for _ in range(100):
        base = free_port()
        try:
            with contextlib.ExitStack() as held:
                for offset in offsets:
                    sock = held.enter_context(socket.socket())
                    sock.bind(("127.0.0.1", base + offset))
        except OSError:
            continue
        return base
    raise AssertionError(f"no free port with {offsets} free above it")


def wait_http(url: str, timeout: float = 30, **kwargs: object) -> httpx.Response:
    """The first answer from ``url`` that is no server error."""

    def answer() -> httpx.Response | None:
        try:
            response = httpx.get(url, timeout=2, **kwargs)  # type: ignore[arg-type]
        except httpx.HTTPError:
            return None
        return response if response.status_code < 500 else None

    return poll(answer, timeout, f"{url} to answer", interval=0.25)


def json_lines(path: Path) -> list[dict[str, Any]]:
    """Every complete line of a log being written, parsed: each must be JSON."""
    lines = path.read_text().splitlines(keepends=True)
    return [json.loads(line) for line in lines if line.endswith("\n") and line.strip()]


@pytest.fixture(scope="module")
def ops(redis_url: str, pg_module_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A cluster logging JSON, with a worker metrics endpoint; task events as by default (off)."""
    metrics_port = free_port()
    settings = Settings(
        database_url=pg_module_url,
        **broker_settings("redis", redis_url),
        **{**FAST, "log_format": "json"},
        metrics_port=metrics_port,
        encryption_keys=KEY,
    )
    with running_cluster(settings, tmp_path_factory.mktemp("ops")) as cluster:
        yield cluster


@dataclass
class Flower:
    port: int
    auth: tuple[str, str] = ("ops", "secret")

    def tasks(self, execution: str) -> dict[str, dict[str, Any]]:
        """Flower's tasks of ``execution``, by task id (``<execution>:<step>:<attempt>``)."""
        tasks = httpx.get(
            f"http://127.0.0.1:{self.port}/api/tasks", params={"limit": 1000}, auth=self.auth, timeout=5
        ).json()
        return {uuid: t for uuid, t in tasks.items() if execution in str(t.get("args"))}


def watching_flower(cluster: Cluster) -> Flower:
    """`wfe flower` on ``cluster``, once it has turned the worker's task events on (task events
    are off in the worker's own settings: Flower turns them on at run time, some seconds after
    it starts)."""
    served = Flower(free_port())
    cluster.processes.start_flower(served.port, "--basic-auth=ops:secret")
    wait_http(f"http://127.0.0.1:{served.port}/api/workers", auth=served.auth)
    cluster.engine.register(WorkflowBuilder("warm-flower").agent("fetch", "echo"))
    started: list[str] = []

    def events_on() -> bool:
        """Whether Flower saw a worker receive any warm-up task (one more is run each time)."""
        execution = cluster.engine.start("warm-flower").id
        assert cluster.wait(execution).status == "completed"
        started.append(execution)
        return any(served.tasks(e).get(f"{e}:fetch:1", {}).get("received") for e in started)

    poll(events_on, 60, "Flower to turn task events on in the worker", interval=0.5)
    return served


@pytest.fixture(scope="module")
def flower(ops: Cluster) -> Flower:
    assert not ops.settings.task_events and ops.settings.inline_steps > 0
    return watching_flower(ops)


def test_flower_reports_the_step_tasks_of_a_finished_execution(ops: Cluster, flower: Flower) -> None:
    """The step the worker runs in place after the first shows in Flower as well."""
    ops.engine.register(WorkflowBuilder("flowered").agent("fetch", "echo").agent("store", "echo"))
    execution = ops.engine.start("flowered").id
    assert ops.wait(execution).status == "completed"
    found = poll(lambda: flower.tasks(execution).get(f"{execution}:store:1"), 15, "the step run in place")
    assert found["state"] == "SUCCESS" and found["name"] == "flowered.store"


@pytest.mark.parametrize("delivery", ["message", "in place"])
def test_flower_shows_each_attempt_in_the_state_of_its_outcome(
    ops: Cluster, flower: Flower, delivery: str
) -> None:
    """ok succeeds, write fails transiently once then succeeds, boom fails fatally. A step with
    a timeout always comes by message; without one, the worker runs each next step in place."""
    name = f"truthful-{delivery.replace(' ', '-')}"
    limit = {"timeout": 60} if delivery == "message" else {}
    ops.engine.register(
        WorkflowBuilder(name)
        .agent("ok", "echo", **limit)
        .agent("write", "flaky", retry={"max_attempts": 3, "initial_delay": 0.1}, **limit)
        .agent("boom", "fatal", **limit)
    )
    execution = ops.engine.start(name).id
    assert ops.wait(execution).status == "failed"
    expected = {
        f"{execution}:{task}": state
        for task, state in (
            ("ok:1", "SUCCESS"),
            ("write:1", "RETRY"),
            ("write:2", "SUCCESS"),
            ("boom:1", "FAILURE"),
        )
    }
    tasks = poll(
        lambda: (
            (found := flower.tasks(execution))
            and {uuid: found.get(uuid, {}).get("state") for uuid in expected} == expected
            and found
        ),
        20,
        "Flower to show each attempt in the state of its outcome",
        explain=lambda: {uuid: t.get("state") for uuid, t in flower.tasks(execution).items()},
    )
    ok, retried, written, boom = (tasks[uuid] for uuid in expected)
    assert '"step": "ok"' in ok["result"] and retried["retries"] == 0 and written["retries"] == 1
    assert (
        "attempt 1 failed on purpose" in retried["exception"]
        and "another attempt is scheduled" in retried["exception"]
    )
    assert "TransientError" in retried["traceback"] and "flaky" in retried["traceback"]
    assert "fatal [BROKEN]: cannot go on" in boom["exception"] and "FatalError" in boom["traceback"]
    assert '"attempts": 2' in written["result"]
    # the engine's record is unchanged: one run per attempt, the message acknowledged (no rerun)
    runs = [(r["step_name"], r["attempt"], r["status"]) for r in ops.engine.logs(execution)]
    assert sorted(runs) == [
        ("boom", 1, "failed"),
        ("ok", 1, "succeeded"),
        ("write", 1, "failed"),
        ("write", 2, "succeeded"),
    ]


def test_a_secret_through_three_steps_is_in_no_log_line_task_event_or_row(
    ops: Cluster, flower: Flower
) -> None:
    """Real workers: the agents have the key; the workers' JSON log lines, Flower's tasks
    (arguments, results, exceptions, tracebacks) and the database have only ``***`` or its
    sealed form."""
    secret = f"sk-{uuid.uuid4().hex}"
    ops.engine.register(
        WorkflowBuilder("keyed")
        .agent("one", "keyholder")
        .agent(
            "two", "keyholder", config={"fail_once": True}, retry={"max_attempts": 3, "initial_delay": 0.1}
        )
        .agent("three", "keyholder")
        .secrets("input.key")
    )
    execution = ops.engine.start("keyed", {"key": secret}).id
    assert ops.wait(execution).status == "completed"
    expected = [f"{execution}:{task}" for task in ("one:1", "two:1", "two:2", "three:1")]
    tasks = poll(
        lambda: (found := flower.tasks(execution)) and all(u in found for u in expected) and found,
        20,
        "Flower to show every attempt",
        explain=lambda: flower.tasks(execution),
    )
    assert "the vendor refused key ***" in tasks[f"{execution}:two:1"]["exception"]
    logged = "".join(path.read_text() for path in ops.logs.glob("*.log"))
    assert "using key ***" in logged
    with ops.engine.store.engine.connect() as conn:
        rows = [
            repr(tuple(row))
            for table in schema.metadata.sorted_tables
            for row in conn.execute(sa.select(table))
        ]
    surfaces = {"the log files": logged, "Flower's tasks": json.dumps(tasks), "the tables": "\n".join(rows)}
    assert [name for name, text in surfaces.items() if secret in text] == []
    outputs = [r["output_data"] for r in ops.engine.logs(execution) if r["status"] == "succeeded"]
    assert [o["token"] for o in outputs] == ["***"] * 3  # handed on: sealed on the way


def test_workers_expose_prometheus_metrics(ops: Cluster) -> None:
    ops.engine.register(
        WorkflowBuilder("measured")
        .agent("a", "echo")
        .agent("b", "flaky", retry={"initial_delay": 0.1})
        .agent("list", "lister")
        .map("each", "steps.list.items", agent="mapper")
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
    items = 'wfe_map_item_attempts_total{status="succeeded",step="each",workflow="measured"}'
    assert samples[items] == 3, [name for name in samples if "map_item" in name]
    assert samples['wfe_step_retries_total{agent="flaky"}'] >= 1
    assert samples['wfe_step_duration_seconds_count{agent="echo"}'] >= 1
    assert any(key.startswith("wfe_step_queue_wait_seconds_bucket") for key in samples)


def test_worker_logs_are_json_lines_with_execution_and_step(ops: Cluster) -> None:
    ops.engine.register(WorkflowBuilder("logged").agent("talk", "chatty"))
    execution = ops.engine.start("logged").id
    assert ops.wait(execution).status == "completed"
    worker = next(p for p in ops.processes.processes if p.name == "worker0")
    mine = [d for d in json_lines(worker.log) if d["message"] == "working on talk"]  # every line is JSON
    assert len(mine) == 1
    assert mine[0]["execution_id"] == execution and mine[0]["step"] == "talk" and mine[0]["attempt"] == 1
    # the same message again, as a redelivery would bring it: the worker's claim finds nothing, and
    # says so outside any agent call, still about that execution and step
    run = next(r for r in ops.engine.store.step_runs(execution) if r.step_name == "talk")
    again = Dispatch(run.id, execution, "logged", "talk", 1, task_id=task_id(execution, "talk", 1))
    ops.engine.dispatcher.dispatch([again])
    left = poll(
        lambda: [d for d in json_lines(worker.log) if d["message"].startswith(f"run {run.id} is no longer")],
        30,
        "the worker to log the claim that found nothing",
    )
    assert left[0]["execution_id"] == execution and left[0]["step"] == "talk"
    assert left[0]["attempt"] == 1 and left[0]["workflow"] == "logged"


def test_a_worker_whose_metrics_port_is_taken_warns(ops: Cluster, tmp_path: Path) -> None:
    """A second worker on the host with the same metrics port says clearly it serves no metrics."""
    port = ops.settings.metrics_port
    assert port is not None
    wait_http(f"http://127.0.0.1:{port}/metrics")  # worker0 holds the port
    # its own queues, so that it takes none of the cluster's steps
    settings = ops.settings.with_overrides(**broker_settings("redis", ops.settings.broker_url))
    crowded = LocalCluster(settings, tmp_path, concurrency=1, cwd=ROOT)
    try:
        worker = crowded.start_worker("crowded")
        warned = poll(
            lambda: [d for d in json_lines(worker.log) if "cannot be bound" in d["message"]],
            60,
            "the worker to warn that its metrics port cannot be bound",
            explain=lambda: worker.tail(40),
        )
        assert warned[0]["level"] == "warning" and str(port) in warned[0]["message"]
        assert worker.alive()  # it runs on, without its endpoint
    finally:
        crowded.stop()


@pytest.mark.timeout(240)  # four processes start on two cores
def test_a_workflow_runs_through_honcho_and_the_procfile(
    redis_url: str, pg_databases: object, tmp_path: Path
) -> None:
    database = pg_databases.create()  # type: ignore[attr-defined]
    # one metrics port in the env file for every worker, as in config/wfe.env.example
    settings = Settings(
        database_url=database, **broker_settings("redis", redis_url), **FAST, metrics_port=free_port()
    )
    env_path = tmp_path / "wfe.env"
    env_path.write_text("".join(f"{k}='{v}'\n" for k, v in settings_env(settings).items()))
    base = free_base((100, 200, 201))
    # a shell with no virtualenv active and no WFE_ setting: the Procfile finds the checkout's
    # wfe, and each process reads the env file itself (honcho passes it nothing)
    venv_bin = str(Path(sys.executable).parent)
    path = ":".join(p for p in os.environ["PATH"].split(":") if p != venv_bin)
    env = {**services.environment_without_settings(), "PATH": path, "WFE_ENV_FILE": str(env_path)}
    env.pop("VIRTUAL_ENV", None)
    with (tmp_path / "honcho.log").open("wb") as log:
        honcho = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "honcho",
                "start",
                "-f",
                str(ROOT / "Procfile"),
                "-d",
                str(ROOT),
                "-p",
                str(base),
                "-c",
                "worker=2",
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
        # honcho's $PORT for worker.1 and worker.2 (the third process type: base + 200): each
        # worker serves its metrics on its own port (empty until that worker has run a step),
        # once it is ready: a worker that ran nothing may still be starting on a loaded machine
        for port in (base + 200, base + 201):
            assert wait_http(f"http://127.0.0.1:{port}/metrics", timeout=120).status_code == 200
    finally:
        os.killpg(honcho.pid, signal.SIGTERM)
        try:
            honcho.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(honcho.pid, signal.SIGKILL)
            honcho.wait(5)
