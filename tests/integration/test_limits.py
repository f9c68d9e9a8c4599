"""Concurrency limits held by real processes: two workers (two processes each) and a
coordinator on Redis and PostgreSQL never run more executions of a key at once than its limit."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.conftest import FAST, Cluster, broker_settings, start_cluster
from workflow_engine.definitions import WorkflowBuilder
from workflow_engine.settings import Settings

pytestmark = pytest.mark.long


@pytest.fixture(scope="module")
def two_workers(
    redis_url: str, pg_module_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    settings = Settings(database_url=pg_module_url, **broker_settings("redis", redis_url), **FAST)
    cluster = start_cluster(settings, tmp_path_factory.mktemp("limits") / "logs", concurrency=2, workers=2)
    try:
        yield cluster
    finally:
        cluster.processes.stop(graceful=False)
        cluster.engine.close()


def most_at_once(intervals: list[tuple[float, float]]) -> int:
    """The most intervals open at the same moment."""
    moments = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    current = peak = 0
    for _, change in moments:
        current += change
        peak = max(peak, current)
    return peak


def test_a_keys_limit_holds_across_two_workers_and_the_queue_drains_oldest_first(
    two_workers: Cluster,
) -> None:
    engine = two_workers.engine
    engine.register(
        WorkflowBuilder("export")
        .concurrency(2, key="input.customer_id")
        .agent("one", "echo", config={"sleep": 0.4})
        .agent("two", "echo", config={"sleep": 0.2})
        .build()
    )
    c1 = [engine.start("export", {"customer_id": "c1", "n": n}).id for n in range(6)]
    c2 = [engine.start("export", {"customer_id": "c2", "n": n}).id for n in range(2)]
    views = {execution_id: two_workers.wait(execution_id, timeout=90) for execution_id in c1 + c2}
    assert {view.status for view in views.values()} == {"completed"}
    spans = {e: (v.started_at.timestamp(), v.finished_at.timestamp()) for e, v in views.items()}  # type: ignore[union-attr]
    assert most_at_once([spans[e] for e in c1]) == 2  # the limit, reached and never passed
    assert most_at_once([spans[e] for e in c1 + c2]) > 2  # another key's executions are not held back
    starts = [spans[e][0] for e in c1]
    assert starts[2:] == sorted(starts[2:])  # the queued ones started oldest first


def test_a_rate_limit_holds_across_two_workers(two_workers: Cluster) -> None:
    engine = two_workers.engine
    engine.register(
        WorkflowBuilder("calls")
        .agent("items", "lister")
        .map("call", "steps.items.items", agent="echo", after="items", rate_limit="10/s")
        .build()
    )
    view = two_workers.wait(engine.start("calls", {"n": 30}).id, timeout=90)
    assert view.status == "completed"
    runs = [
        r
        for r in engine.store.step_runs(view.id, items=True)
        if r.step_name == "call" and r.item_index is not None
    ]
    starts = sorted(r.started_at.timestamp() for r in runs if r.started_at is not None)
    assert len(starts) == 30 and {r.attempt for r in runs} == {1}
    most = max(sum(1 for s in starts[i:] if s < start + 1.0) for i, start in enumerate(starts))
    assert most <= 10  # in any one-second window, whichever worker started them
    assert starts[-1] - starts[0] >= 2.0  # 30 starts at 10/s take at least two seconds
    workers = {r.worker for r in runs}
    assert len(workers) >= 2, workers
