"""Worker nodes from heartbeat records, and the Celery node names processes take."""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime, timedelta

from workflow_engine.store.records import WorkerRecord
from workflow_engine.worker.app import node_name
from workflow_engine.worker.heartbeat import worker_identity
from workflow_engine.worker.nodes import nodes

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
STALE_AFTER = 15.0


def record(
    node: str, pid: int, slots: int = 0, ago: float = 1.0, queues: tuple[str, ...] = ("wfe.steps",)
) -> WorkerRecord:
    """The heartbeat record of process ``pid`` of ``node``, last seen ``ago`` seconds before NOW."""
    seen = NOW - timedelta(seconds=ago)
    started = seen - timedelta(minutes=5)
    return WorkerRecord(f"{node}:{pid}", "vm", pid, ["echo"], list(queues), slots, started, seen)


def test_a_prefork_worker_is_one_node_with_its_pool_processes() -> None:
    pool = [record("worker-10@vm", 10, slots=2), record("worker-10@vm", 11), record("worker-10@vm", 12)]
    found = nodes(pool, NOW, STALE_AFTER)
    assert [(n.name, n.live, n.pids, n.capacity) for n in found] == [("worker-10@vm", True, [10, 11, 12], 2)]


def test_a_pool_process_that_is_gone_is_not_counted_with_its_live_node() -> None:
    ghost = record("worker-10@vm", 11, ago=600, queues=("old.queue",))
    found = nodes([record("worker-10@vm", 10, slots=2), ghost, record("worker-10@vm", 13)], NOW, STALE_AFTER)
    assert [(n.name, n.pids, n.queues) for n in found] == [("worker-10@vm", [10, 13], ["wfe.steps"])]


def test_a_silent_node_says_what_its_last_processes_reported() -> None:
    records = [
        record("worker-20@vm", 20, slots=4, ago=100),
        record("worker-20@vm", 21, ago=101),
        record("worker-20@vm", 5, slots=8, ago=5000),  # an earlier process under the same name (-n)
        record("worker-10@vm", 10, slots=2),
    ]
    found = nodes(records, NOW, STALE_AFTER)
    assert [(n.name, n.live, n.pids, n.capacity) for n in found] == [
        ("worker-10@vm", True, [10], 2),
        ("worker-20@vm", False, [], 4),
    ]
    assert found[1].as_dict()["state"] == "silent"
    assert found[1].last_seen == NOW - timedelta(seconds=100)


def test_records_named_after_the_host_alone_are_the_hosts_node() -> None:
    """Before node names, a process's record was named ``<host>:<pid>``."""
    found = nodes([record("vm", 10, slots=1), record("vm", 11, slots=1)], NOW, STALE_AFTER)
    assert [(n.name, n.pids, n.capacity) for n in found] == [("vm", [10, 11], 2)]


def test_a_process_is_named_after_its_role_and_pid_unless_given_a_name() -> None:
    host = socket.gethostname()
    assert node_name("worker") == f"worker-{os.getpid()}@{host}"
    assert node_name("coordinator") == f"coordinator-{os.getpid()}@{host}"
    assert node_name("worker", "fast@%h") == f"fast@{host}"
    assert node_name("worker", "fast") == "celery@fast"  # as Celery's -n reads a bare name
    assert worker_identity("worker-1@vm")[0] == f"worker-1@vm:{os.getpid()}"
