"""Chaos: 200 executions while a worker is killed, the coordinator killed and restarted, and the
broker's queues flushed. Every execution must complete; side effects run at least once."""

from __future__ import annotations

import signal
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.integration.conftest import (
    Cluster,
    flush_redis_queues,
    ledger_lines,
)
from workflow_engine.definitions import WorkflowBuilder

pytestmark = [pytest.mark.slow, pytest.mark.chaos, pytest.mark.long]

EXECUTIONS = 200
STEPS = 5


def history_reasons(cluster: Cluster, ids: list[str], fragment: str) -> int:
    """How many step events of these executions give a reason containing ``fragment``."""
    store = cluster.engine.store
    return sum(1 for i in ids for e in store.events(i) if e.step_name and fragment in (e.reason or ""))


def test_every_execution_completes_through_worker_coordinator_and_broker_failures(
    killing_cluster: Cluster, ledger: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster = killing_cluster
    engine = cluster.engine
    builder = WorkflowBuilder("chaos")
    for index in range(STEPS):
        builder.agent(f"s{index}", "echo", config={"sleep": 0.02})
    engine.register(builder)
    ids = [engine.start("chaos", {"i": i}, metadata={"ledger": str(ledger)}).id for i in range(EXECUTIONS)]
    total = EXECUTIONS * STEPS

    cluster.wait_for(lambda: len(ledger_lines(ledger)) > total * 0.15, timeout=60, what="15% of steps")
    worker = next(p for p in cluster.processes.processes if p.name == "worker0")
    worker.signal(signal.SIGKILL)  # a whole worker, mid-step
    cluster.processes.start_worker("worker0-replacement")

    cluster.wait_for(lambda: len(ledger_lines(ledger)) > total * 0.35, timeout=60, what="35% of steps")
    coordinator = next(p for p in cluster.processes.processes if p.name == "coordinator")
    coordinator.signal(signal.SIGKILL)
    coordinator.popen.wait(10)  # type: ignore[union-attr]
    cluster.processes.start_coordinator("coordinator-restarted")

    cluster.wait_for(lambda: len(ledger_lines(ledger)) > total * 0.55, timeout=60, what="55% of steps")
    lost_messages = flush_redis_queues(cluster.settings)
    assert lost_messages > 0  # the broker really lost work the engine must recover

    deadline = time.monotonic() + 240
    for execution_id in ids:
        final = cluster.wait(execution_id, timeout=max(1.0, deadline - time.monotonic()))
        assert final.status == "completed", (execution_id, final.status, final.error)

    calls = Counter((line[0], line[1]) for line in ledger_lines(ledger))
    assert set(calls) == {(e, f"s{i}") for e in ids for i in range(STEPS)}  # every side effect ran
    duplicates = sum(1 for count in calls.values() if count > 1)
    extra = sum(count - 1 for count in calls.values())
    # the history tells how: attempts lost with the killed worker ran again, lost messages were
    # published again by the reconciler
    rerun = history_reasons(cluster, ids, "lost with its worker")
    republished = history_reasons(cluster, ids, "publishing again")
    assert rerun > 0 and republished > 0, (rerun, republished)
    with capsys.disabled():
        print(
            f"\nchaos: {EXECUTIONS} executions x {STEPS} steps completed; {lost_messages} messages "
            f"flushed from the broker, {republished} published again; {rerun} attempts lost with the "
            f"killed worker ran again; {duplicates} step side effects ran more than once "
            f"({extra} extra runs of {total})"
        )
