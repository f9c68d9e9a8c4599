"""Flow control in make bench.

W2k: W2's burst (200 five-step chains) with a concurrency key that never binds (one value per
execution), against W2 without it, interleaved in the same run: what holding a slot costs.

F2: rate limit precision. A map of 300 items at 50/s over the bench's workers: the achieved
rate in each one-second window (from the runs' start times, which the limit counted) and the
most in any sliding one-second window, which must never exceed 50.

F1: schedule lateness. Twenty one-second interval schedules, fired by two coordinators.
Lateness is how long after its fire time an execution was created (its row's ``created_at``
against ``metadata.scheduled_at``, both written by the database's clock side); duplicates are
fire times that started more than one execution, and missed ones fire times between a
schedule's first and last that started none.
"""

from __future__ import annotations

import statistics
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from bench.harness import Bench, Result, chain_of
from workflow_engine.definitions import WorkflowBuilder
from workflow_engine.store import schema as t


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def bursts(
    bench: Bench, label: str, runs: int, count: int, first: str, second: str, input_of: Callable[[int], Any]
) -> tuple[list[float], list[float]]:
    """Steps per second of ``count`` five-step executions of ``first``, then of ``second``
    (which goes first alternating each run), ``runs`` times: the two lists of rates."""

    def burst(workflow: str) -> float:
        began = datetime.now(UTC)
        ids = [bench.engine.start(workflow, input_of(n)).id for n in range(count)]
        return count * 5 / (bench.finished(ids, 600) - began).total_seconds()

    rates: tuple[list[float], list[float]] = ([], [])
    for index in range(runs):
        pair = [(first, rates[0]), (second, rates[1])]
        for workflow, into in pair if index % 2 else reversed(pair):
            into.append(burst(workflow))
            bench.say(f"  {label} {workflow} run {index + 1}: {into[-1]:.1f} steps/s")
    return rates


def keyed_burst(bench: Bench, quick: bool) -> Result:
    count, runs = (100, 3) if quick else (200, 5)
    plain = bench.workflow("burst5", chain_of("burst5", 5))
    keyed = bench.workflow("burst5k", lambda: chain_of("burst5k", 5)().concurrency(100_000, key="input.n"))
    with_key, without = bursts(bench, "W2k", runs, count, keyed, plain, lambda n: {"n": n})
    result = Result("W2k keyed burst", "steps/s", engine=with_key, higher_is_better=True)
    ratio = statistics.median(with_key) / statistics.median(without)
    result.notes = {
        "workflows": count,
        "without_key_steps_per_s": round(statistics.median(without), 1),
        "keyed_vs_plain": round(ratio, 3),
    }
    return result


def schedule_lateness(bench: Bench, quick: bool) -> Result:
    schedules, seconds = 20, 20 if quick else 60
    workflow = bench.workflow("tick1", chain_of("tick1", 1))
    second = bench.cluster.start_coordinator("coordinator2")
    names = [f"f1-{index}" for index in range(schedules)]
    try:
        time.sleep(3)  # the second coordinator is up (its scheduler starts with it)
        for name in names:
            bench.engine.schedules.create(name, workflow, every=1, overlap="allow_all", catchup_window=60)
        time.sleep(seconds)
        for name in names:
            bench.engine.schedules.pause(name)
    finally:
        second.stop()
    e = t.executions
    with bench.engine.store.reading() as db:
        rows = db.execute(sa.select(e.c.metadata, e.c.created_at).where(e.c.workflow_name == workflow)).all()
    fired: dict[str, list[datetime]] = {name: [] for name in names}
    lateness: list[float] = []
    for row in rows:
        scheduled = datetime.fromisoformat(row.metadata["scheduled_at"])
        fired[row.metadata["schedule"]].append(scheduled)
        lateness.append((row.created_at - scheduled).total_seconds() * 1000)
    duplicates = sum(n - 1 for times in fired.values() for n in Counter(times).values() if n > 1)
    missed = 0
    for times in fired.values():
        if times:
            span = (max(times) - min(times)) // timedelta(seconds=1) + 1
            missed += span - len(set(times))
    for name in names:
        bench.engine.schedules.delete(name)
    result = Result("F1 schedule late", "ms p50", engine=[percentile(lateness, 0.5)] if lateness else [])
    result.notes = {
        "schedules": schedules,
        "seconds": seconds,
        "coordinators": 2,
        "fires": len(lateness),
        "p50_ms": round(percentile(lateness, 0.5), 1) if lateness else None,
        "p99_ms": round(percentile(lateness, 0.99), 1) if lateness else None,
        "max_ms": round(max(lateness), 1) if lateness else None,
        "mean_ms": round(statistics.fmean(lateness), 1) if lateness else None,
        "duplicates": duplicates,
        "missed": missed,
    }
    bench.say(f"  {result.workload}: {result.notes}")
    return result


def rate_precision(bench: Bench, quick: bool) -> Result:
    items, limit = (150, 50) if quick else (300, 50)
    workflow = bench.workflow(
        f"rated{items}",
        lambda: (
            WorkflowBuilder(f"rated{items}")
            .agent("items", "bench.items", config={"count": items})
            .map("each", "steps.items.items", agent="bench.noop", after="items", rate_limit=f"{limit}/s")
            .agent("join", "bench.noop", after="each")
        ),
    )
    began = datetime.now(UTC)
    execution_id = bench.engine.start(workflow).id
    seconds = (bench.finished([execution_id], 600) - began).total_seconds()
    r = t.step_runs
    mapped = sa.select(r.c.started_at).where(
        r.c.execution_id == execution_id, r.c.step_name == "each", r.c.item_index.is_not(None)
    )
    with bench.engine.store.reading() as db:
        starts = sorted(row.started_at.timestamp() for row in db.execute(mapped))
    most = max(sum(1 for s in starts[i:] if s < start + 1.0) for i, start in enumerate(starts))
    first = starts[0]
    per_second = Counter(int(s - first) for s in starts)
    result = Result(
        "F2 rate 50/s", "items/s", engine=[len(starts) / (starts[-1] - first)], higher_is_better=True
    )
    result.notes = {
        "items": items,
        "limit_per_s": limit,
        "most_in_any_1s_window": most,
        "per_second": [per_second[k] for k in sorted(per_second)],
        "workflow_seconds": round(seconds, 2),
    }
    bench.say(f"  {result.workload}: {result.notes}")
    return result
