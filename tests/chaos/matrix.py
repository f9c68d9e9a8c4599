"""The chaos matrix: each fault against real processes and servers a run owns, one row each.

    python -m tests.chaos.matrix [--executions 200] [--only NAME,...] [--out docs/chaos.json]

writes the rows as JSON and renders ``docs/CHAOS.md`` from them. ``make chaos`` runs it all;
``tests/integration/test_chaos_matrix.py`` runs a database restart and a partition in
``make test``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.chaos import servers, workload
from tests.chaos.servers import DelayProxy, Namespace, Postgres, RabbitMQ, Redis
from tests.support.polling import TimedOut, poll
from workflow_engine.engine import Engine
from workflow_engine.errors import StoreError
from workflow_engine.processes import LocalCluster, Process, settings_env
from workflow_engine.settings import Settings
from workflow_engine.store import migrate
from workflow_engine.worker.app import create_celery_app

ROOT = Path(__file__).resolve().parents[2]
TERMINAL = ("completed", "failed", "cancelled")
TUNING: dict[str, Any] = {
    "heartbeat_interval": 0.5,
    "worker_lost_after": 5.0,
    "redispatch_after": 8.0,
    "reconcile_interval": 0.5,
    "timeout_grace": 1.0,
    "agent_modules": ("tests.support.agents",),
    "log_level": "INFO",
}
DRAIN_SECONDS = 420.0
WORKLOAD = "a chain of 5, a fan-out of 20 and a join, a timer, a map of 10, a child workflow, in turn"


@dataclass
class Row:
    fault: str
    workload: str
    executions: int
    all_terminal: bool
    statuses: dict[str, int]
    side_effects: int
    lost_steps: int
    duplicate_side_effects: int
    attempts_run_twice: int
    repairs_in_history: int
    recovered_after_s: float | None
    drained_after_s: float
    steps_per_s: float
    tracebacks_logged: int  # by the coordinator and the workers
    outage_lines: int  # "database unreachable" lines, one per process per outage
    passed: bool
    notes: list[str] = field(default_factory=list)


class Deployment:
    """A throwaway PostgreSQL and Redis, a coordinator and workers; optionally a worker in a
    network namespace of its own, reaching PostgreSQL over link 0 and Redis over link 1, and
    every worker's PostgreSQL traffic through a delaying proxy."""

    def __init__(
        self, folder: Path, namespaced: bool = False, latency: float = 0.0, broker: str = "redis"
    ) -> None:
        self.folder = folder
        self.namespace = Namespace(f"wfec{uuid.uuid4().hex[:4]}", 2) if namespaced else None
        if self.namespace is not None:
            self.namespace.create()
        addresses = ["127.0.0.1"]
        if self.namespace is not None:
            addresses += [self.namespace.host_address(0), self.namespace.host_address(1)]
        self.postgres = Postgres(addresses)
        self.redis = Redis(addresses)
        self.rabbitmq = RabbitMQ() if broker == "rabbitmq" else None
        self.proxy: DelayProxy | None = None
        self.latency = latency
        self.cluster: LocalCluster | None = None
        self.inside: Process | None = None
        self.engine: Engine | None = None
        self.tag = uuid.uuid4().hex[:8]
        self.sent: list[str] = []  # idempotency keys of start requests sent as plain messages

    def settings(
        self, db_host: str = "127.0.0.1", redis_host: str = "127.0.0.1", db_port: int | None = None
    ) -> Settings:
        url = self.postgres.url(db_host)
        if db_port is not None:
            url = url.replace(f":{self.postgres.port}/", f":{db_port}/")
        broker = self.rabbitmq.url() if self.rabbitmq is not None else self.redis.url(redis_host)
        return Settings(database_url=url, broker_url=broker, **TUNING)

    def start(self, workers: int = 2) -> None:
        self.postgres.start()
        self.redis.start()
        if self.rabbitmq is not None:
            self.rabbitmq.start()
        migrate.upgrade(self.postgres.url())
        worker_settings = self.settings()
        if self.latency:
            port = servers.free_port()
            self.proxy = DelayProxy(("127.0.0.1", port), ("127.0.0.1", self.postgres.port), self.latency / 2)
            self.proxy.start()
            worker_settings = self.settings(db_port=port)
        self.cluster = LocalCluster(worker_settings, self.folder / "logs", concurrency=2, cwd=ROOT)
        for index in range(workers):
            self.cluster.start_worker(f"worker{index}")
        coordinator = LocalCluster(self.settings(), self.folder / "logs", cwd=ROOT)
        self.cluster.processes.append(coordinator.start_coordinator())
        if self.namespace is not None:
            self.start_inside()
        self.engine = Engine.from_settings(self.settings())
        # every worker's processes beat before the workload starts (each runs its share of it)
        slots = 2 * (workers + (1 if self.namespace is not None else 0))
        queue, store = self.engine.settings.steps_queue, self.engine.store

        def ready() -> bool:
            since = datetime.now(UTC) - timedelta(seconds=5)
            return store.capacity(queue, since) >= slots

        poll(ready, 60, f"{slots} worker processes to beat")

    def start_inside(self) -> None:
        """A worker in the namespace: PostgreSQL over link 0, Redis over link 1."""
        assert self.namespace is not None
        ns = self.settings(self.namespace.host_address(0), self.namespace.host_address(1))
        env = {**os.environ, **settings_env(ns), "PYTHONUNBUFFERED": "1"}
        argv = [sys.executable, "-m", "workflow_engine", "worker", "--concurrency", "2"]
        argv += ["--hostname", f"inside-{self.tag}@%h"]
        self.inside = Process(
            "inside", self.namespace.command(argv), env, self.folder / "logs" / "inside.log", ROOT
        )
        self.inside.start()

    def process(self, name: str) -> Process:
        assert self.cluster is not None
        processes = [*self.cluster.processes, *([self.inside] if self.inside else [])]
        return next(p for p in processes if p.name == name)

    def processes(self) -> list[Process]:
        assert self.cluster is not None
        return [*self.cluster.processes, *([self.inside] if self.inside else [])]

    def close(self) -> None:
        for process in self.processes() if self.cluster else []:
            process.signal(signal.SIGKILL)
            if process.popen is not None:
                process.popen.wait(10)
        if self.engine is not None:
            self.engine.close()
        if self.proxy is not None:
            self.proxy.close()
        self.redis.close()
        if self.rabbitmq is not None:
            self.rabbitmq.close()
        self.postgres.close()
        if self.namespace is not None:
            self.namespace.destroy()


@contextlib.contextmanager
def deployment(folder: Path, **options: Any) -> Iterator[Deployment]:
    made = Deployment(folder, **options)
    try:
        yield made
    finally:
        made.close()


def _progress(ledger: Path) -> int:
    return len(workload.ledger_lines(ledger))


def _after(ledger: Path, share: float, total_hint: int, timeout: float = 120) -> None:
    poll(lambda: _progress(ledger) >= total_hint * share, timeout, f"{share:.0%} of the side effects")


def _terminal(engine: Engine, ids: list[str], timeout: float) -> bool:
    """Whether every execution of ``ids`` ends within ``timeout`` seconds."""
    pending = list(ids)

    def drained() -> bool:
        nonlocal pending
        with contextlib.suppress(StoreError):  # (the database may still be coming back)
            pending = [i for i in pending if engine.store.get_execution(i).status not in TERMINAL]
        return not pending

    try:
        poll(drained, timeout, "every execution to end", interval=0.5)
    except TimedOut:
        return False
    return True


# faults: each waits for the workload to be under way, injects, and returns when it is over
# (the time it ended, and notes)

Fault = Callable[[Deployment, Path, int], tuple[float, list[str]]]


def kill_worker(d: Deployment, ledger: Path, total: int) -> tuple[float, list[str]]:
    _after(ledger, 0.2, total)
    d.process("worker0").signal(signal.SIGKILL)
    assert d.cluster is not None
    d.cluster.start_worker("worker0-replacement")
    return time.time(), ["worker0 SIGKILLed at 20% of the side effects; a replacement started"]


def kill_coordinator(d: Deployment, ledger: Path, total: int) -> tuple[float, list[str]]:
    _after(ledger, 0.2, total)
    coordinator = d.process("coordinator")
    coordinator.signal(signal.SIGKILL)
    assert coordinator.popen is not None and d.cluster is not None
    coordinator.popen.wait(10)
    restarted = LocalCluster(d.settings(), d.folder / "logs", cwd=ROOT).start_coordinator("coordinator-2")
    d.cluster.processes.append(restarted)
    return time.time(), ["coordinator SIGKILLed at 20%, another started"]


def restart_redis(d: Deployment, ledger: Path, total: int) -> tuple[float, list[str]]:
    _after(ledger, 0.3, total)
    d.redis.stop()  # nothing is persisted: every queued message is lost
    time.sleep(2)
    d.redis.start()
    return time.time(), ["Redis stopped at 30% (no persistence: its queues are lost) and started 2 s later"]


def restart_rabbitmq(d: Deployment, ledger: Path, total: int) -> tuple[float, list[str]]:
    assert d.rabbitmq is not None
    _after(ledger, 0.3, total)
    d.rabbitmq.stop()
    d.rabbitmq.start()
    return time.time(), ["RabbitMQ stopped cleanly at 30% (durable queues kept) and started again"]


def restart_postgres(d: Deployment, ledger: Path, total: int) -> tuple[float, list[str]]:
    _after(ledger, 0.3, total)
    d.postgres.restart("fast")
    return time.time(), ["pg_ctl restart -m fast at 30%"]


def stop_postgres(d: Deployment, ledger: Path, total: int, seconds: float = 30) -> tuple[float, list[str]]:
    _after(ledger, 0.3, total)
    d.postgres.stop("fast")
    # another service asks for executions while the database is down, by plain Celery messages
    sender = create_celery_app(d.settings())
    for index in range(5):
        key = f"sent-during-outage-{index}"
        kwargs = {"workflow": "chaos-chain", "metadata": {"ledger": str(ledger)}, "idempotency_key": key}
        sender.send_task("wfe.start_workflow", kwargs=kwargs, queue=d.settings().intake_queue)
        d.sent.append(key)
    time.sleep(seconds)
    d.postgres.start()
    note = f"pg_ctl stop -m fast at 30%, started again {seconds:.0f} s later; 5 start requests sent meanwhile"
    return time.time(), [note]


def started_by_message(d: Deployment, timeout: float = 120) -> list[str | None]:
    """The executions the start requests sent as messages started (None: not started)."""
    assert d.engine is not None
    store = d.engine.store
    found: dict[str, str] = {}

    def all_started() -> bool:
        with contextlib.suppress(StoreError), store.transaction() as tx:
            for key in d.sent:
                record = tx.execution_by_key(store.system_user_id(), key)
                if record is not None:
                    found[key] = record.id
        return len(found) == len(d.sent)

    with contextlib.suppress(TimedOut):
        poll(all_started, timeout, "the start requests sent during the outage", interval=0.5)
    return [found.get(key) for key in d.sent]


def _partition(link: int, what: str, seconds: float) -> Fault:
    def fault(d: Deployment, ledger: Path, total: int) -> tuple[float, list[str]]:
        assert d.namespace is not None
        _after(ledger, 0.25, total)
        d.namespace.cut(link)
        time.sleep(seconds)
        d.namespace.mend(link)
        return time.time(), [
            f"the namespaced worker cut from {what} for {seconds:.0f} s at 25% (ip link set down)"
        ]

    return fault


def no_fault(d: Deployment, ledger: Path, total: int) -> tuple[float, list[str]]:
    return time.time(), []


@dataclass(frozen=True)
class Case:
    name: str
    fault: Fault
    namespaced: bool = False
    latency: float = 0.0
    workers: int = 2
    quiet: bool = False  # an outage of the database: one line per process, no traceback
    broker: str = "redis"


def cases(partition_seconds: float = 20, outage_seconds: float = 30) -> list[Case]:
    return [
        Case("worker SIGKILLed mid-step", kill_worker),
        Case("coordinator SIGKILLed", kill_coordinator),
        Case("Redis restarted, its queues lost", restart_redis),
        Case("RabbitMQ restarted", restart_rabbitmq, broker="rabbitmq"),
        Case("PostgreSQL restarted (pg_ctl restart -m fast)", restart_postgres, quiet=True),
        Case(
            f"PostgreSQL stopped for {outage_seconds:.0f} s",
            lambda d, ledger, total: stop_postgres(d, ledger, total, outage_seconds),
            quiet=True,
        ),
        Case(
            f"a worker cut from PostgreSQL for {partition_seconds:.0f} s",
            _partition(0, "PostgreSQL", partition_seconds),
            namespaced=True,
            workers=1,
            quiet=True,
        ),
        Case(
            f"a worker cut from the broker for {partition_seconds:.0f} s",
            _partition(1, "the broker", partition_seconds),
            namespaced=True,
            workers=1,
        ),
        Case("no fault (baseline for latency)", no_fault),
        Case("50 ms between workers and PostgreSQL, whole run", no_fault, latency=0.05),
    ]


def run_case(case: Case, executions: int, folder: Path) -> Row:
    folder.mkdir(parents=True, exist_ok=True)
    ledger = folder / "ledger.txt"
    with deployment(folder, namespaced=case.namespaced, latency=case.latency, broker=case.broker) as d:
        d.start(workers=case.workers)
        assert d.engine is not None
        began = time.time()
        ids = workload.start(d.engine, executions, ledger)
        expected = executions * 8  # side effects, roughly (the mix averages about 8 per execution)
        ended, notes = case.fault(d, ledger, expected)
        by_message = started_by_message(d) if d.sent else []
        if None in by_message:
            notes.append(f"{by_message.count(None)} start request(s) sent as messages never started")
        ids += [execution for execution in by_message if execution is not None]
        terminal = _terminal(d.engine, ids, DRAIN_SECONDS)
        drained = time.time()
        found = workload.outcome(d.engine.store, ids, ledger)
        after = [float(line[4]) for line in workload.ledger_lines(ledger) if float(line[4]) > ended]
        recovered = round(min(after) - ended, 2) if after and case.fault is not no_fault else None
        crashed = [p.name for p in d.processes() if not p.alive() and "replacement" not in p.name]
        crashed = [
            name for name in crashed if name not in ("worker0", "coordinator") or case.fault is no_fault
        ]
        if crashed:
            notes.append(f"exited on their own: {', '.join(crashed)}")
        logs = [p.log.read_text(errors="replace") for p in d.processes() if p.log.exists()]
        tracebacks = sum(text.count("Traceback (most recent call last)") for text in logs)
        outage_lines = sum(text.count("database unreachable, retrying") for text in logs)
        passed = (
            None not in by_message
            and terminal
            and found.all_terminal
            and found.completed
            and found.lost == 0
            and found.attempts_twice == 0
            and not crashed
            and (tracebacks == 0 or not case.quiet)
        )
        return Row(
            fault=case.name,
            workload=WORKLOAD,
            executions=len(ids),
            all_terminal=terminal and found.all_terminal,
            statuses=found.statuses,
            side_effects=found.steps,
            lost_steps=found.lost,
            duplicate_side_effects=found.duplicates,
            attempts_run_twice=found.attempts_twice,
            repairs_in_history=found.repairs,
            recovered_after_s=recovered,
            drained_after_s=round(drained - began, 1),
            steps_per_s=round(found.steps / max(drained - began, 0.001), 1),
            tracebacks_logged=tracebacks,
            outage_lines=outage_lines,
            passed=passed,
            notes=notes,
        )


def render(rows: list[Row], command: str) -> str:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Chaos matrix",
        "",
        f"Rendered from `docs/chaos.json` ({when}) by `{command}` (`make chaos`). Each row is one run of",
        "the workload against a PostgreSQL cluster and a Redis the run owns (throwaway, in a",
        "temporary folder), a coordinator and two prefork workers (2 processes each) as real",
        "processes; a fault is injected once the workload is under way. A row passes when every",
        "execution ends completed, every succeeded step left its side effect in the ledger at least",
        "once, no attempt's side effect came from two processes, and no process crashed.",
        "",
        "| fault | executions | all terminal | completed | side effects | lost | duplicates "
        "| attempt run twice | repairs in history | recovered after (s) | drained after (s) | steps/s "
        "| tracebacks logged | outage lines | passed |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        recovered = "" if row.recovered_after_s is None else f"{row.recovered_after_s}"
        lines.append(
            f"| {row.fault} | {row.executions} | {'yes' if row.all_terminal else 'NO'} | "
            f"{row.statuses.get('completed', 0)} | {row.side_effects} | {row.lost_steps} | "
            f"{row.duplicate_side_effects} | {row.attempts_run_twice} | {row.repairs_in_history} | "
            f"{recovered} | {row.drained_after_s} | {row.steps_per_s} | {row.tracebacks_logged} | "
            f"{row.outage_lines} | {'yes' if row.passed else 'NO'} |"
        )
    lines += ["", "Notes per fault:", ""]
    lines += [f"- {row.fault}: {'; '.join(row.notes) or 'none'}" for row in rows]
    lines += [
        "",
        "## How each fault is made",
        "",
        "- The workload: the executions start at once, in turn one of each: a chain of five steps",
        "  (each agent appends a line to a ledger file: execution, step, attempt, process id, time), a",
        "  fan-out of 20 with a join, a 2 s timer between two steps, a map over 10 items (5 at a",
        "  time), and a parent whose second step is a child workflow of two steps.",
        "- Lost: a succeeded step (or map item) with no line in the ledger. Duplicates: lines beyond",
        "  the first for one step. Attempt run twice: one attempt's line from two processes.",
        "  Repairs: events in the history that name the reconciler's repairs.",
        "- Processes are killed with SIGKILL. Redis is stopped and started again, and it persists",
        "  nothing. RabbitMQ is a node of the run's own, stopped with SIGTERM and started again.",
        "- PostgreSQL is a cluster of the run's own (`initdb` in a temporary folder):",
        "  `pg_ctl restart -m fast`, or `pg_ctl stop -m fast` followed by `pg_ctl start`.",
        "- Partitions: one worker runs in a network namespace of its own (`ip netns add`). Two veth",
        "  pairs connect it, one to PostgreSQL and one to Redis; both servers also listen on the",
        "  host end of each pair. The cut is `ip link set down` on the namespace's end of one pair,",
        "  and then `up` again. The run creates all of it and removes it. The other worker is not",
        "  cut off.",
        '- Latency: the kernel here has no `netem` qdisc (`tc qdisc add ... netem` answers "unknown',
        '  qdisc"). The workers therefore reach PostgreSQL through a proxy that holds each chunk',
        "  25 ms in each direction, 50 ms a round trip. The same run without the proxy is the",
        "  baseline.",
        "- Disk pressure (a full disk, slow fsync) is out of scope.",
        "",
        "Reproduce: `make chaos` as root, or `.venv/bin/python -m tests.chaos.matrix --executions 200",
        "[--only WORD,...]`. `make test` runs two rows, smaller (`tests/integration/test_chaos_matrix.py`):",
        "PostgreSQL stopped for 5 s with start requests sent meanwhile (10 executions), and a worker",
        "cut from PostgreSQL for 8 s (40 executions).",
        "",
        "Found and fixed by this matrix: a start request sent as a plain Celery message while the",
        "database was down was lost (the intake task failed and its message was acknowledged); it is",
        "now sent again until it can be stored. While the database was down, every heartbeat, every",
        "reconciler pass and every step task logged a traceback, hundreds a minute per process. Now",
        "each process logs one line when the outage starts and one when it ends.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos.matrix")
    parser.add_argument("--executions", type=int, default=200)
    parser.add_argument("--only", help="comma-separated words: run the faults whose name holds one")
    parser.add_argument("--out", default=str(ROOT / "docs" / "chaos.json"))
    parser.add_argument("--markdown", default=str(ROOT / "docs" / "CHAOS.md"))
    args = parser.parse_args(argv)
    chosen = cases()
    if args.only:
        words = [w.strip().lower() for w in args.only.split(",")]
        chosen = [c for c in chosen if any(w in c.name.lower() for w in words)]
    rows = []
    with tempfile.TemporaryDirectory(prefix="wfe-chaos-") as folder:
        for index, case in enumerate(chosen):
            print(f"chaos: {case.name} ...", flush=True)
            row = run_case(case, args.executions, Path(folder) / f"case{index}")
            print(f"chaos: {case.name}: {'passed' if row.passed else 'FAILED'} {asdict(row)}", flush=True)
            rows.append(row)
    baseline = next((r for r in rows if r.fault.startswith("no fault")), None)
    for row in rows:
        if baseline is not None and row.fault.startswith("50 ms"):
            ratio = row.steps_per_s / baseline.steps_per_s if baseline.steps_per_s else 0.0
            row.notes.append(f"throughput {ratio:.2f} x the same run without latency")
    Path(args.out).write_text(json.dumps([asdict(r) for r in rows], indent=2) + "\n")
    command = "python -m tests.chaos.matrix" + (f" --only {args.only}" if args.only else "")
    Path(args.markdown).write_text(render(rows, command))
    return 0 if all(r.passed for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
