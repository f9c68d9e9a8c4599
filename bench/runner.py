"""The benchmark: the engine against raw Celery canvas, interleaved in one run.

Both sides use the same Redis broker and prefork workers with the same concurrency. The engine
persists every step result and transition in PostgreSQL (as in production) and is timed from
the client's start call to the execution's ``finished_at`` written by the worker that finished
it; canvas is timed from ``apply_async`` to its result arriving through the Redis result
backend.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import sqlalchemy as sa
from celery import chain, chord, group

from bench import flow_control, sealing
from workflow_engine.definitions import WorkflowBuilder
from workflow_engine.engine import Engine
from workflow_engine.processes import LocalCluster, Process
from workflow_engine.secrets import new_key
from workflow_engine.settings import Settings
from workflow_engine.store import migrate
from workflow_engine.store import schema as t
from workflow_engine.store.urls import database_url

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Result:
    workload: str
    unit: str
    engine: list[float] = field(default_factory=list)
    canvas: list[float] = field(default_factory=list)
    higher_is_better: bool = False
    notes: dict[str, Any] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        engine = statistics.median(self.engine) if self.engine else None
        canvas = statistics.median(self.canvas) if self.canvas else None
        ratio = engine / canvas if engine is not None and canvas else None
        return {
            "workload": self.workload,
            "unit": self.unit,
            "engine_median": engine,
            "engine_min": min(self.engine, default=None),
            "engine_max": max(self.engine, default=None),
            "canvas_median": canvas,
            "canvas_min": min(self.canvas, default=None),
            "canvas_max": max(self.canvas, default=None),
            "ratio": ratio,
            "runs": len(self.engine),
            "higher_is_better": self.higher_is_better,
            **({"notes": self.notes} if self.notes else {}),
        }


class PeakMemory:
    """Samples the summed RSS of process trees; the peak, in MiB."""

    def __init__(self, pids: Sequence[int], interval: float = 0.2) -> None:
        self.pids = list(pids)
        self.interval = interval
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _rss(self) -> float:
        total = 0
        for pid in self.pids:
            try:
                root = psutil.Process(pid)
                for process in [root, *root.children(recursive=True)]:
                    total += process.memory_info().rss
            except psutil.Error:
                continue
        return total / 2**20

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._rss())
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._stop.set()
        self._thread.join()


class Bench:
    def __init__(
        self, redis_url: str, postgres_url: str, concurrency: int, log_dir: Path, quiet: bool = False
    ) -> None:
        tag = uuid.uuid4().hex[:8]
        self.quiet = quiet
        self.admin = sa.create_engine(
            database_url(postgres_url), isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool
        )
        self.database = f"wfe_bench_{tag}"
        with self.admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{self.database}"')
        url = sa.make_url(postgres_url).set(database=self.database).render_as_string(hide_password=False)
        migrate.upgrade(url)
        self.settings = Settings(
            database_url=url,
            broker_url=redis_url,
            queue_prefix=f"bench{tag}",
            intake_queue=f"bench{tag}.intake",
            agent_modules=("bench.agents",),
            log_level="WARNING",
            encryption_keys=new_key(),
        )
        self.cluster = LocalCluster(self.settings, log_dir, concurrency=concurrency, cwd=ROOT).start()
        canvas_env = {
            **os.environ,
            "BENCH_BROKER": redis_url,
            "BENCH_BACKEND": redis_url.rsplit("/", 1)[0] + "/1",
            "BENCH_QUEUE": f"bench{tag}.canvas",
        }
        os.environ.update({k: canvas_env[k] for k in ("BENCH_BROKER", "BENCH_BACKEND", "BENCH_QUEUE")})
        argv = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "bench.canvas_app",
            "worker",
            "-c",
            str(concurrency),
            "-P",
            "prefork",
            "-l",
            "WARNING",
            "--without-gossip",
            "--without-mingle",
            "-n",
            f"canvas-{tag}@%h",
        ]
        self.canvas_worker = Process("canvas", argv, canvas_env, log_dir / "canvas.log", ROOT).start()
        from bench import canvas_app

        self.canvas = canvas_app
        self.engine = Engine.from_settings(self.settings)
        self.registered: set[str] = set()

    def close(self) -> None:
        self.cluster.stop()
        self.canvas_worker.stop()
        self.engine.close()
        self.canvas.app.close()
        with self.admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
        self.admin.dispose()

    def say(self, text: str) -> None:
        if not self.quiet:
            print(text, file=sys.stderr, flush=True)

    # engine side

    def workflow(self, name: str, build: Callable[[], WorkflowBuilder]) -> str:
        if name not in self.registered:
            self.engine.register(build())
            self.registered.add(name)
        return name

    def finished(self, ids: Sequence[str], timeout: float) -> datetime:
        """Wait for every execution to complete; the time the last one finished."""
        e = t.executions
        deadline = time.monotonic() + timeout
        pending = list(ids)
        last: datetime | None = None
        while pending:
            with self.engine.store.reading() as conn:
                rows = conn.execute(
                    sa.select(e.c.id, e.c.status, e.c.finished_at).where(e.c.id.in_(pending[:1000]))
                ).all()
            for row in rows:
                if row.status in ("completed", "failed", "cancelled"):
                    if row.status != "completed":
                        raise RuntimeError(f"execution {row.id} ended {row.status}")
                    pending.remove(row.id)
                    last = row.finished_at if last is None else max(last, row.finished_at)
            if pending:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{len(pending)} executions unfinished")
                time.sleep(0.02)
        assert last is not None
        return last

    def run_engine(self, workflow: str, count: int = 1, timeout: float = 600) -> float:
        """Seconds from the first start call to the last execution finishing."""
        began = datetime.now(UTC)
        ids = [self.engine.start(workflow).id for _ in range(count)]
        return (self.finished(ids, timeout) - began).total_seconds()

    # canvas side

    def run_canvas(self, make: Callable[[], Any], count: int = 1, timeout: float = 600) -> float:
        began = time.perf_counter()
        results = [make().apply_async() for _ in range(count)]
        for result in results:
            result.get(timeout=timeout, follow_parents=False, disable_sync_subtasks=False)
        return time.perf_counter() - began

    @contextmanager
    def memory(self) -> Iterator[PeakMemory]:
        pids = [p.pid for p in self.cluster.processes]
        with PeakMemory(pids) as peak:
            yield peak


def chain_of(name: str, size: int, agent: str = "bench.noop") -> Callable[[], WorkflowBuilder]:
    def build() -> WorkflowBuilder:
        builder = WorkflowBuilder(name)
        for index in range(size):
            builder.agent(f"s{index}", agent)
        return builder

    return build


def fan_of(name: str, width: int) -> Callable[[], WorkflowBuilder]:
    def build() -> WorkflowBuilder:
        builder = WorkflowBuilder(name).agent("start", "bench.noop")
        branches = [f"b{i}" for i in range(width)]
        for branch in branches:
            builder.agent(branch, "bench.noop", after="start")
        return builder.agent("join", "bench.noop", after=branches)

    return build


def map_of(name: str, count: int, max_concurrency: int | None = None) -> Callable[[], WorkflowBuilder]:
    """A step that gives ``count`` items, a map of a no-op over them, and a join step."""

    def build() -> WorkflowBuilder:
        return (
            WorkflowBuilder(name)
            .agent("items", "bench.items", config={"count": count})
            .map(
                "each",
                "steps.items.items",
                agent="bench.noop",
                max_concurrency=max_concurrency,
                after="items",
            )
            .agent("join", "bench.noop", after="each")
        )

    return build


def parent_of(name: str, child: str) -> Callable[[], WorkflowBuilder]:
    """One step, then a child execution of ``child``."""

    def build() -> WorkflowBuilder:
        return WorkflowBuilder(name).agent("start", "bench.noop").workflow("child", child, after="start")

    return build


def interleaved(
    bench: Bench, result: Result, runs: int, engine: Callable[[], float], canvas: Callable[[], float]
) -> Result:
    """Alternate which side goes first, so neither always runs on a warmer machine."""
    for index in range(runs):
        pair = [("engine", engine), ("canvas", canvas)]
        if index % 2:
            pair.reverse()
        for side, measure in pair:
            value = measure()
            getattr(result, side).append(value)
            bench.say(f"  {result.workload} {side} run {index + 1}: {value:.3f} {result.unit}")
    return result


def workloads(bench: Bench, quick: bool) -> list[Result]:
    c = bench.canvas
    results: list[Result] = []

    # warm both sides up: imports, connections, first-use caches
    bench.run_engine(bench.workflow("warm", chain_of("warm", 5)))
    bench.run_canvas(lambda: chain(c.noop.s() for _ in range(5)))

    chain50 = bench.workflow("chain50", chain_of("chain50", 50))
    results.append(
        interleaved(
            bench,
            Result("W1 chain50", "ms/step"),
            3 if quick else 5,
            lambda: bench.run_engine(chain50) / 50 * 1000,
            lambda: bench.run_canvas(lambda: chain(c.noop.s() for _ in range(50))) / 50 * 1000,
        )
    )

    burst = bench.workflow("burst5", chain_of("burst5", 5))
    count = 100 if quick else 200
    results.append(
        interleaved(
            bench,
            Result("W2 burst", "steps/s", higher_is_better=True, notes={"workflows": count, "steps": 5}),
            2 if quick else 3,
            lambda: count * 5 / bench.run_engine(burst, count),
            lambda: count * 5 / bench.run_canvas(lambda: chain(c.noop.s() for _ in range(5)), count),
        )
    )

    fan200 = bench.workflow("fan200", fan_of("fan200", 200))
    results.append(
        interleaved(
            bench,
            Result("W3 fan200", "s"),
            2 if quick else 3,
            lambda: bench.run_engine(fan200),
            lambda: bench.run_canvas(
                lambda: chain(c.noop.s(), chord(group(c.noop.s() for _ in range(200)), c.join.s()))
            ),
        )
    )

    sleep40 = bench.workflow("sleep40", chain_of("sleep40", 40, "bench.sleep10"))
    results.append(
        interleaved(
            bench,
            Result("W4 sleep40", "s"),
            2 if quick else 3,
            lambda: bench.run_engine(sleep40),
            lambda: bench.run_canvas(lambda: chain(c.sleep10.s() for _ in range(40))),
        )
    )
    results.extend(composition(bench, quick))
    results.append(flow_control.keyed_burst(bench, quick))
    results.append(sealing.secret_burst(bench, quick))
    results.append(flow_control.schedule_lateness(bench, quick))
    results.append(flow_control.rate_precision(bench, quick))
    results.extend(scale(bench, quick))
    return results


def composition(bench: Bench, quick: bool) -> list[Result]:
    """W5: a map of 200 items and a join; W6: 50 parents at once, each with a 3-step child."""
    c = bench.canvas
    map200 = bench.workflow("map200", map_of("map200", 200))
    results = [
        interleaved(
            bench,
            Result("W5 map200", "s"),
            2 if quick else 3,
            lambda: bench.run_engine(map200),
            lambda: bench.run_canvas(lambda: chord(group(c.noop.s(i) for i in range(200)), c.join.s())),
        )
    ]
    bench.workflow("child3", chain_of("child3", 3))
    parent = bench.workflow("parent50", parent_of("parent50", "child3"))
    results.append(
        interleaved(
            bench,
            Result("W6 children50", "s", notes={"parents": 50, "steps_each": 4}),
            2 if quick else 3,
            lambda: bench.run_engine(parent, 50),
            lambda: bench.run_canvas(lambda: chain(c.noop.s() for _ in range(4)), 50),
        )
    )
    return results


def scale(bench: Bench, quick: bool) -> list[Result]:
    """S1: one long chain and one wide fan-out at growing sizes; S2: many executions at once."""
    results = []
    sizes = (1_000, 2_500) if quick else (1_000, 2_500, 5_000, 10_000)
    for shape, build in (("chain", chain_of), ("fan", fan_of)):
        for size in sizes:
            if shape == "fan" and size > 5_000:
                continue
            name = bench.workflow(f"s1{shape}{size}", build(f"s1{shape}{size}", size))
            with bench.memory() as peak:
                seconds = bench.run_engine(name, timeout=3600)
            result = Result(f"S1 {shape} {size}", "s", engine=[seconds])
            result.notes = {
                "steps": size,
                "peak_rss_mib": round(peak.peak, 1),
                "ms_per_step": round(seconds * 1000 / size, 3),
            }
            bench.say(f"  {result.workload}: {seconds:.2f} s, peak {peak.peak:.0f} MiB")
            results.append(result)
    for size in (1_000,) if quick else (1_000, 5_000, 10_000):
        name = bench.workflow(f"s3map{size}", map_of(f"s3map{size}", size, max_concurrency=100))
        with bench.memory() as peak:
            seconds = bench.run_engine(name, timeout=3600)
        result = Result(f"S3 map {size}", "s", engine=[seconds])
        result.notes = {
            "items": size,
            "max_concurrency": 100,
            "peak_rss_mib": round(peak.peak, 1),
            "ms_per_item": round(seconds * 1000 / size, 3),
        }
        bench.say(f"  {result.workload}: {seconds:.2f} s, peak {peak.peak:.0f} MiB")
        results.append(result)
    count = 500 if quick else 2_000
    name = bench.workflow("s2", chain_of("s2", 3))
    with bench.memory() as peak:
        seconds = bench.run_engine(name, count, timeout=3600)
    rows = bench.engine.store.count_rows()
    result = Result(f"S2 {count} in flight", "s", engine=[seconds])
    result.notes = {
        "executions": count,
        "steps_per_second": round(count * 3 / seconds, 1),
        "peak_rss_mib": round(peak.peak, 1),
        "rows": rows,
    }
    bench.say(f"  {result.workload}: {seconds:.2f} s, rows {rows}")
    results.append(result)
    return results


def table(results: list[Result]) -> str:
    lines = [
        f"{'workload':<18} {'unit':<8} {'engine':>9} {'canvas':>9} {'ratio':>7}   "
        f"{'engine min-max':<17} {'canvas min-max':<17} notes"
    ]
    for result in results:
        row = result.row()

        def span(low: float | None, high: float | None) -> str:
            return f"{low:.3f}-{high:.3f}" if low is not None and high is not None else "-"

        engine = f"{row['engine_median']:.3f}" if row["engine_median"] is not None else "-"
        canvas = f"{row['canvas_median']:.3f}" if row["canvas_median"] is not None else "-"
        ratio = f"{row['ratio']:.2f}" if row["ratio"] is not None else "-"
        notes = json.dumps(result.notes) if result.notes else ""
        lines.append(
            f"{row['workload']:<18} {row['unit']:<8} {engine:>9} {canvas:>9} {ratio:>7}   "
            f"{span(row['engine_min'], row['engine_max']):<17} "
            f"{span(row['canvas_min'], row['canvas_max']):<17} {notes}"
        )
    return "\n".join(lines)
