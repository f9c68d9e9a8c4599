"""Map steps and child workflows on real processes: a real broker, real workers, a real
database; and a 1,000-item map through a SIGKILLed worker and a SIGKILLed coordinator."""

from __future__ import annotations

import signal
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.integration.conftest import Cluster, ledger_lines
from workflow_engine.definitions import WorkflowBuilder

pytestmark = [pytest.mark.slow, pytest.mark.long]
ADMITTED = ("queued", "running", "retrying")  # what a map's max_concurrency bounds


def item_calls(ledger: Path, execution_id: str, step: str) -> Counter[int]:
    """How many times each item of ``step`` ran, from the ledger."""
    prefix = f"{step}["
    return Counter(
        int(line[1][len(prefix) : -1])
        for line in ledger_lines(ledger)
        if line[0] == execution_id and line[1].startswith(prefix)
    )


def test_a_map_runs_each_item_once_and_gives_the_results_in_order(
    core_cluster: Cluster, ledger: Path
) -> None:
    engine = core_cluster.engine
    engine.register(
        WorkflowBuilder("mapped")
        .agent("list", "lister")
        .map(
            "each",
            "steps.list.items",
            agent="mapper",
            input={"twice": "item * 2"},
            max_concurrency=3,
            config={"sleep": 0.05},
            after="list",
        )
        .map("wide", "steps.list.items", agent="mapper", input={"twice": "item * 2"}, after="list")
        .agent("after", "echo", after=["each", "wide"])
    )
    view = engine.start("mapped", {"n": 20}, metadata={"ledger": str(ledger)})
    admitted: list[int] = []  # how many of the capped map's items, at each look while it runs

    def capped_map_ended() -> bool:
        runs = [r for r in engine.store.step_runs(view.id, items=True) if r.step_name == "each"]
        admitted.append(sum(r.item_index is not None and r.status in ADMITTED for r in runs))
        return any(r.item_index is None and r.finished_at is not None for r in runs)

    core_cluster.wait_for(capped_map_ended, what="the capped map to end")
    # (20 items of 0.05 s on two worker processes keep it open half a second at least: looks
    # every 0.05 s see its window full)
    assert max(admitted) == 3, admitted  # max_concurrency: the window filled, and never passed
    final = core_cluster.wait(view.id)
    assert final.status == "completed", final.error
    each = next(step for step in engine.get(view.id).steps if step.name == "each")
    assert each.output["results"] == [{"item": i, "index": i, "twice": 2 * i} for i in range(20)]
    # without a cap, most items are carried to the workers of their siblings, run in place
    wide = next(step for step in engine.get(view.id).steps if step.name == "wide")
    assert wide.output["results"] == each.output["results"]
    assert item_calls(ledger, view.id, "wide") == Counter(range(20))
    in_place = [
        e for e in engine.history(view.id) if e.step_name == "wide" and "in place" in (e.reason or "")
    ]
    assert in_place, "no item of the uncapped map was run in place"
    assert each.items == {"total": 20, "done": 20, "failed": 0, "running": 0, "pending": 0, "cancelled": 0}
    assert item_calls(ledger, view.id, "each") == Counter(range(20))
    logs = engine.logs(view.id, step_name="each", index=7)
    assert [(entry["index"], entry["status"]) for entry in logs] == [(7, "succeeded")]


def test_children_run_linked_and_a_retry_runs_only_the_failed_one_again(
    core_cluster: Cluster, ledger: Path, tmp_path: Path
) -> None:
    engine = core_cluster.engine
    engine.register(WorkflowBuilder("kid").agent("work", "echo").agent("last", "once"))
    engine.register(
        WorkflowBuilder("family")
        .agent("list", "lister")
        .map("kids", "steps.list.items", workflow="kid", input={"i": "item"}, after="list")
    )
    marker = tmp_path / "marker"  # the first call of `once`, in whichever child, fails
    view = engine.start("family", {"n": 3}, metadata={"ledger": str(ledger), "marker": str(marker)})
    failed = core_cluster.wait(view.id)
    assert failed.status == "failed" and failed.error is not None
    assert failed.error["type"] == "map_failed"
    children = {child.execution_id: child for child in engine.get(view.id).children}
    assert sorted(child.index for child in children.values()) == [0, 1, 2]
    assert {child.step for child in children.values()} == {"kids"}
    done_before = {i for i, c in children.items() if c.status == "completed"}
    engine.retry(view.id, actor="tester")
    final = core_cluster.wait(view.id)
    assert final.status == "completed", final.error
    calls = Counter(line[0] for line in ledger_lines(ledger) if line[1] == "work")
    for child_id in done_before:
        assert calls[child_id] == 1  # a child that succeeded never ran again
    latest = {child.index: child for child in engine.get(view.id).children}  # (oldest first)
    assert {child.status for child in latest.values()} == {"completed"}


def test_cancelling_a_parent_cancels_its_running_child(redis_cluster: Cluster, ledger: Path) -> None:
    engine = redis_cluster.engine
    engine.register(
        WorkflowBuilder("sleepy").agent("nap", "slow", config={"seconds": 30, "cooperative": True})
    )
    engine.register(WorkflowBuilder("holder").workflow("sub", "sleepy"))
    view = engine.start("holder", metadata={"ledger": str(ledger)})
    redis_cluster.wait_for(lambda: len(engine.get(view.id).children) == 1, what="the child")
    (child,) = engine.get(view.id).children
    redis_cluster.wait_for(
        lambda: redis_cluster.step_status(child.execution_id, "nap") == "running", what="the child's step"
    )
    engine.cancel(view.id, actor="tester", reason="not needed")
    assert redis_cluster.wait(view.id).status == "cancelled"
    assert redis_cluster.wait(child.execution_id).status == "cancelled"
    assert engine.get(child.execution_id).parent_execution_id == view.id


ITEMS = 1000


@pytest.mark.chaos
def test_a_thousand_item_map_loses_no_item_through_a_killed_worker_and_coordinator(
    killing_cluster: Cluster, ledger: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster = killing_cluster
    engine = cluster.engine
    engine.register(
        WorkflowBuilder("big")
        .agent("list", "lister")
        .map(
            "each",
            "steps.list.items",
            agent="mapper",
            max_concurrency=50,
            config={"sleep": 0.01},
            after="list",
        )
    )
    view = engine.start("big", {"n": ITEMS}, metadata={"ledger": str(ledger)})

    def ran() -> int:
        return len(item_calls(ledger, view.id, "each"))

    cluster.wait_for(lambda: ran() > ITEMS * 0.2, timeout=60, what="20% of the items")
    worker = next(p for p in cluster.processes.processes if p.name == "worker0")
    worker.signal(signal.SIGKILL)
    cluster.processes.start_worker("worker0-replacement")
    cluster.wait_for(lambda: ran() > ITEMS * 0.5, timeout=60, what="half of the items")
    coordinator = next(p for p in cluster.processes.processes if p.name == "coordinator")
    coordinator.signal(signal.SIGKILL)
    coordinator.popen.wait(10)  # type: ignore[union-attr]
    cluster.processes.start_coordinator("coordinator-restarted")

    started = time.monotonic()
    final = cluster.wait(view.id, timeout=180)
    assert final.status == "completed", final.error
    each = next(step for step in engine.get(view.id).steps if step.name == "each")
    assert each.output["results"] == [{"item": i, "index": i} for i in range(ITEMS)]
    assert each.output["failed"] == []
    calls = item_calls(ledger, view.id, "each")
    assert set(calls) == set(range(ITEMS))  # no item lost
    extra = sum(count - 1 for count in calls.values())
    # beyond at-least-once: only the attempts the killed worker held ran again
    assert extra <= 2 * 2 + 2, calls.most_common(5)
    with capsys.disabled():
        print(
            f"\nmap kill: {ITEMS} items completed through a killed worker and coordinator; "
            f"{extra} item(s) ran twice; the end took {time.monotonic() - started:.1f}s after the kills"
        )


def test_a_child_that_starts_with_a_map_runs_it_whole(core_cluster: Cluster, ledger: Path) -> None:
    """The worker that starts a child runs the child's first step in place: here an item of a
    map, which must be run as that item and counted toward its map."""
    engine = core_cluster.engine
    engine.register(WorkflowBuilder("mapchild").map("each", "input.xs", agent="mapper", max_concurrency=1))
    engine.register(
        WorkflowBuilder("mapparent")
        .agent("go", "echo")
        .workflow("sub", "mapchild", input={"xs": "[1, 2, 3]"}, after="go")
    )
    view = engine.start("mapparent", metadata={"ledger": str(ledger)})
    final = core_cluster.wait(view.id)
    assert final.status == "completed", final.error
    assert final.output == {
        "sub": {
            "each": {
                "results": [{"item": 1, "index": 0}, {"item": 2, "index": 1}, {"item": 3, "index": 2}],
                "failed": [],
            }
        }
    }
