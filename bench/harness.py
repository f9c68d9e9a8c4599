"""What every workload of the benchmark runs on: a cluster of the engine's own processes and a
raw Celery worker on one Redis broker and a fresh PostgreSQL database (:class:`Bench`), the
shapes of workflow the workloads use, and how a result and its runs are kept.
"""

from __future__ import annotations

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
