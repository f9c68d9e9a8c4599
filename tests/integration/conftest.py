"""Real processes: `wfe worker` and `wfe coordinator` against a real broker and database."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.conftest import ROOT, unavailable
from tests.support import services
from tests.support.polling import TimedOut, poll
from workflow_engine.definitions import WorkflowBuilder
from workflow_engine.engine import Engine
from workflow_engine.processes import LocalCluster
from workflow_engine.settings import Settings

FAST = {
    "heartbeat_interval": 0.5,
    "worker_lost_after": 3.0,
    "redispatch_after": 6.0,
    "reconcile_interval": 0.5,
    "timeout_grace": 1.0,
    "agent_modules": ("tests.support.agents",),
    "log_level": "INFO",
}


@pytest.fixture(scope="session")
def redis_url() -> str:
    url = services.redis_url()
    if url is None:
        unavailable("no Redis server on 127.0.0.1:6379 and WFE_TEST_REDIS_URL unset")
    assert url is not None
    return url


@pytest.fixture(scope="session")
def amqp_url() -> str:
    url = services.rabbitmq_url()
    if url is None:
        unavailable("no RabbitMQ on 127.0.0.1:5672 and WFE_TEST_AMQP_URL unset")
    assert url is not None
    return url


def broker_settings(kind: str, url: str) -> dict[str, Any]:
    """Each cluster gets its own key space (Redis) or queue names, so runs never mix."""
    tag = uuid.uuid4().hex[:10]
    values: dict[str, Any] = {"broker_url": url, "queue_prefix": f"t{tag}", "intake_queue": f"t{tag}.intake"}
    if kind == "redis":
        values["broker_transport_options"] = {"global_keyprefix": f"wfe-test-{tag}:"}
    return values


def redis_queue_keys(client: redis.Redis, settings: Settings) -> list[bytes]:
    """The Redis keys of this cluster's queues (kombu keeps each queue as a list)."""
    prefix = settings.broker_transport_options["global_keyprefix"]
    return list(client.scan_iter(match=f"{prefix}{settings.queue_prefix}.*"))


def queued_messages(settings: Settings) -> int:
    client = redis.Redis.from_url(settings.broker_url)
    try:
        return sum(int(client.llen(key)) for key in redis_queue_keys(client, settings))
    finally:
        client.close()


def messages_in_flight(settings: Settings, task: str, queues: Sequence[str]) -> int:
    """How many messages for ``task`` are still queued on ``queues`` or delivered and not yet
    acknowledged (tasks acknowledge late: once they have finished)."""
    prefix = settings.broker_transport_options["global_keyprefix"]
    client = redis.Redis.from_url(settings.broker_url)
    try:
        queued = 0
        for queue in queues:
            for raw in client.lrange(f"{prefix}{queue}", 0, -1):
                queued += json.loads(raw).get("headers", {}).get("task") == task
        held = 0
        for raw in client.hvals(f"{prefix}unacked"):
            message, *_ = json.loads(raw)
            held += message.get("headers", {}).get("task") == task
        return queued + held
    finally:
        client.close()


def flush_redis_queues(settings: Settings) -> int:
    """Delete every queued and unacknowledged message of this cluster: a broker that lost its
    data. How many messages were lost."""
    prefix = settings.broker_transport_options["global_keyprefix"]
    client = redis.Redis.from_url(settings.broker_url)
    try:
        queues = redis_queue_keys(client, settings)
        unacked = [f"{prefix}unacked", f"{prefix}unacked_index", f"{prefix}unacked_mutex"]
        with client.pipeline(transaction=True) as pipe:
            for key in queues:
                pipe.llen(key)
            pipe.hlen(f"{prefix}unacked")  # delivered, not yet acknowledged
            pipe.delete(*queues, *unacked)
            *sizes, _deleted = pipe.execute()
        return int(sum(sizes))
    finally:
        client.close()


@dataclass
class Cluster:
    """A running worker and coordinator, and an engine in the test process on the same settings."""

    settings: Settings
    engine: Engine
    processes: LocalCluster
    logs: Path

    def wait(self, execution_id: str, timeout: float = 60) -> Any:
        try:
            return self.engine.wait(execution_id, timeout=timeout)
        except TimeoutError:
            self.dump()
            raise

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 30, what: str = "condition") -> None:
        """:func:`poll`, with the processes' last lines shown if it times out."""
        try:
            poll(predicate, timeout, what, interval=0.05)
        except TimedOut:
            self.dump()
            raise

    def step_status(self, execution_id: str, step: str) -> str:
        return self.statuses(execution_id)[step]

    def statuses(self, execution_id: str) -> dict[str, str]:
        return {s.name: s.status for s in self.engine.get(execution_id).steps}

    def dump(self) -> None:
        for process in self.processes.processes:
            print(f"--- {process.name} (pid {process.popen.pid if process.popen else '-'}) ---")
            print(process.tail(60))


def start_cluster(settings: Settings, logs: Path, concurrency: int = 2, workers: int = 1) -> Cluster:
    processes = LocalCluster(settings, logs, concurrency=concurrency, cwd=ROOT)
    for index in range(workers):
        processes.start_worker(f"worker{index}")
    processes.start_coordinator()
    return Cluster(settings, Engine.from_settings(settings), processes, logs)


@contextmanager
def running_cluster(settings: Settings, logs: Path) -> Iterator[Cluster]:
    """A started cluster, stopped (with its engine closed) on the way out."""
    cluster = start_cluster(settings, logs)
    try:
        yield cluster
    finally:
        cluster.processes.stop()
        cluster.engine.close()


@pytest.fixture(scope="module")
def pg_module_url(pg_databases: services.PostgresDatabases) -> str:
    return pg_databases.create()


@pytest.fixture(scope="module")
def redis_cluster(
    redis_url: str, pg_module_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    """Redis broker, PostgreSQL store, one prefork worker (2 processes) and one coordinator."""
    settings = Settings(database_url=pg_module_url, **broker_settings("redis", redis_url), **FAST)
    with running_cluster(settings, tmp_path_factory.mktemp("redis-cluster")) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def psycopg2_cluster(
    redis_url: str, pg_databases: services.PostgresDatabases, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    """As ``redis_cluster``, on a `postgresql+psycopg2://` URL (the other supported driver)."""
    url = services.with_scheme(pg_databases.create(), "postgresql+psycopg2")
    settings = Settings(database_url=url, **broker_settings("redis", redis_url), **FAST)
    with running_cluster(settings, tmp_path_factory.mktemp("psycopg2-cluster")) as cluster:
        yield cluster


@pytest.fixture(scope="module", params=["psycopg", "psycopg2"])
def driver_cluster(request: pytest.FixtureRequest) -> Cluster:
    """Redis and PostgreSQL through each driver: psycopg 3 (a plain `postgresql://` URL) and
    psycopg2."""
    name = "redis_cluster" if request.param == "psycopg" else "psycopg2_cluster"
    cluster: Cluster = request.getfixturevalue(name)
    assert cluster.engine.store.engine.dialect.driver == request.param
    return cluster


@pytest.fixture(scope="module")
def embedded_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """The embedded default: SQLite and kombu's filesystem transport, with real processes."""
    folder = tmp_path_factory.mktemp("embedded")
    settings = Settings(database_url=f"sqlite:///{folder / 'wfe.db'}", **FAST)
    assert settings.embedded_broker
    cluster = start_cluster(settings, folder / "logs")
    try:
        yield cluster
    finally:
        cluster.processes.stop(graceful=False)
        cluster.engine.close()


@pytest.fixture(scope="module", params=["redis", "embedded"])
def core_cluster(request: pytest.FixtureRequest) -> Cluster:
    """The core scenarios run on Redis with PostgreSQL, and on the embedded default."""
    cluster: Cluster = request.getfixturevalue(f"{request.param}_cluster")
    return cluster


@pytest.fixture
def killing_cluster(redis_url: str, pg_module_url: str, tmp_path: Path) -> Iterator[Cluster]:
    """Two workers (2 processes each) and a coordinator of the test's own, for tests that kill
    them: stopped without grace on the way out."""
    settings = Settings(database_url=pg_module_url, **broker_settings("redis", redis_url), **FAST)
    cluster = start_cluster(settings, tmp_path / "logs", concurrency=2, workers=2)
    try:
        yield cluster
    finally:
        cluster.processes.stop(graceful=False)
        cluster.engine.close()


@pytest.fixture
def ledger(tmp_path: Path) -> Path:
    """A file agents append one line to per call: counts side effects across processes."""
    return tmp_path / "ledger.txt"


def ledger_lines(path: Path) -> list[list[str]]:
    if not path.exists():
        return []
    return [line.split() for line in path.read_text().splitlines() if line.strip()]


def sleeping_fan(name: str, width: int, seconds: float) -> tuple[WorkflowBuilder, list[str]]:
    """start → ``width`` branches b0, b1, ... that each sleep ``seconds`` → join (echo agents,
    which write the ledger); the builder and the branches' names."""
    builder = WorkflowBuilder(name).agent("start", "echo")
    branches = [f"b{i}" for i in range(width)]
    for branch in branches:
        builder.agent(branch, "echo", after="start", config={"sleep": seconds})
    return builder.agent("join", "echo", after=branches), branches
