"""`make soak` (S4): retention at scale, on PostgreSQL, with the bench's workers.

1. 1,000 executions of a three-step chain run for real (1% of them fail at their second step
   with one error that differs by a number), then their rows (execution, step runs, events) are
   copied in SQL up to 100,000 executions, each copy under new ids with its times moved back:
   90,000 finished 31 to 120 days ago, the last 10,000 within the last day.
2. Rows and sizes of the tables and the database.
3. The execution listing, the error-group listing and a bulk dry run over the 100,000, through
   the Python API: their latency (median of 5), and the plan PostgreSQL chooses for each
   statement they send (EXPLAIN), reporting the indexes used and any sequential scan. The
   monitor's list and execution pages against their JSON routes (median of 7, in process).
4. W2 (200 five-step chains) alone (three bursts before the purge and three after it), and
   while `wfe db purge --older-than 30d` deletes all but the last 10,000: the purge's rate, and
   W2's throughput during it against alone (medians).
5. Rows and sizes again (and after VACUUM FULL, which gives the space back to the system).

`python -m bench.soak [--executions N]` prints the report and writes bench/results/soak.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench.harness import ROOT, Bench, chain_of, map_of
from tests.support import services
from workflow_engine.definitions import WorkflowBuilder
from workflow_engine.store import schema as t
from workflow_engine.store.listing import ExecutionQuery

SEED = 1_000
TABLES = (t.executions, t.step_runs, t.events)


def seed(bench: Bench, executions: int, keep: int) -> None:
    """Run SEED executions for real, then copy them up to ``executions`` with older times."""
    ok = bench.workflow("soak3", chain_of("soak3", 3))
    failing = bench.workflow(
        "soak3f",
        lambda: (
            WorkflowBuilder("soak3f")
            .agent("s1", "bench.noop")
            .agent("s2", "bench.fail", after="s1", retry={"max_attempts": 1})
            .agent("s3", "bench.noop", after="s2")
        ),
    )
    ids = [bench.engine.start(failing, {"n": n}).id for n in range(SEED // 100)]
    ids += [bench.engine.start(ok, {"n": n}).id for n in range(SEED - len(ids))]
    settled(bench, ids, 600)
    copies = executions // SEED - 1
    recent = keep // SEED - 1  # (the originals are recent too)
    began = time.perf_counter()
    with bench.engine.store.engine.begin() as conn:
        for copy in range(1, copies + 1):
            back = timedelta(hours=copy * 2) if copy <= recent else timedelta(days=31 + (copy - recent))
            copy_rows(conn, ids, copy, back)
    bench.say(f"  copied {copies} x {SEED} executions in {time.perf_counter() - began:.0f} s")
    with bench.engine.store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for table in TABLES:  # (what autovacuum does soon after such a load)
            conn.exec_driver_sql(f"VACUUM ANALYZE {table.name}")


def settled(bench: Bench, ids: list[str], timeout: float) -> None:
    e = t.executions
    deadline = time.monotonic() + timeout
    while True:
        with bench.engine.store.reading() as conn:
            open_ = conn.execute(
                sa.select(sa.func.count())
                .select_from(e)
                .where(e.c.id.in_(ids), e.c.status.not_in(("completed", "failed", "cancelled")))
            ).scalar_one()
        if not open_:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{open_} seed executions unfinished")
        time.sleep(0.2)


def copy_rows(conn: sa.Connection, ids: list[str], copy: int, back: timedelta) -> None:
    """Copy the executions ``ids`` with their step runs and events: new ids, times ``back``."""
    shift = sa.literal(back, sa.Interval())

    def new_id(column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
        return sa.cast(sa.cast(sa.func.md5(column + f":{copy}"), sa.Uuid()), sa.String())

    for table, key in ((t.executions, "id"), (t.step_runs, "execution_id"), (t.events, "execution_id")):
        columns = [c for c in table.c if not (c.primary_key and c.name == "id" and table is not t.executions)]
        values: list[sa.ColumnElement[Any]] = []
        for column in columns:
            if column.name in ("id", "execution_id"):
                values.append(new_id(column))
            elif column.name == "idempotency_key" or column.name == "task_id":
                values.append(sa.null())
            elif isinstance(column.type, t.UTCDateTime):
                values.append(column - shift)
            else:
                values.append(column)
        source = sa.select(*values).where(table.c[key].in_(ids))
        conn.execute(sa.insert(table).from_select([c.name for c in columns], source))


def sizes(bench: Bench) -> dict[str, Any]:
    with bench.engine.store.engine.connect() as conn:
        tables = {
            table.name: {
                "rows": conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one(),
                "bytes": conn.exec_driver_sql(f"SELECT pg_total_relation_size('{table.name}')").scalar_one(),
            }
            for table in TABLES
        }
        database = conn.exec_driver_sql("SELECT pg_database_size(current_database())").scalar_one()
    return {"tables": tables, "database_bytes": database}


@contextmanager
def statements(bench: Bench) -> Iterator[list[tuple[str, Any]]]:
    """The SELECT statements the engine sends meanwhile, with their parameters."""
    sent: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            sent.append((statement, parameters))

    sa.event.listen(bench.engine.store.engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        sa.event.remove(bench.engine.store.engine, "before_cursor_execute", record)


def plans(bench: Bench, sent: list[tuple[str, Any]]) -> list[dict[str, Any]]:
    """For each statement: the indexes its plan uses and the tables it scans sequentially."""
    found = []
    with bench.engine.store.engine.connect() as conn:
        for statement, parameters in sent:
            plan = conn.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {statement}", parameters).scalar_one()
            nodes = list(walk(plan[0]["Plan"]))
            found.append(
                {
                    "statement": " ".join(statement.split())[:160],
                    "indexes": sorted({n["Index Name"] for n in nodes if "Index Name" in n}),
                    "sequential_scans": sorted(
                        {n["Relation Name"] for n in nodes if n["Node Type"] == "Seq Scan"}
                    ),
                }
            )
    return found


def walk(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", ()):
        yield from walk(child)


def timed(bench: Bench, name: str, call: Callable[[], Any]) -> dict[str, Any]:
    call()  # (warm)
    with statements(bench) as sent:
        call()
    seconds = []
    for _ in range(5):
        began = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - began)
    median = round(statistics.median(seconds) * 1000, 1)
    result = {"name": name, "median_ms": median, "plans": plans(bench, sent)}
    bench.say(f"  {name}: {result['median_ms']} ms")
    return result


def listings(bench: Bench) -> list[dict[str, Any]]:
    engine = bench.engine
    return [
        timed(bench, "execution listing (newest 100)", lambda: engine.executions(ExecutionQuery())),
        timed(
            bench,
            "execution listing (workflow and status)",
            lambda: engine.executions(ExecutionQuery(workflow="soak3f", status="failed", limit=50)),
        ),
        timed(bench, "error-group listing (24 h)", lambda: engine.errors.list()),
        timed(bench, "error-group listing (30 d)", lambda: engine.errors.list(since=timedelta(days=30))),
        timed(
            bench,
            "bulk retry dry run (failed ones)",
            lambda: engine.bulk.apply("retry", ExecutionQuery(status="failed"), dry_run=True),
        ),
    ]


def pages_against_json(bench: Bench) -> list[dict[str, Any]]:
    """The monitor's list and execution pages against the JSON routes that answer the same, over
    the 100,000: median of 7, and the statements each sends."""
    from fastapi.testclient import TestClient

    from workflow_engine.api.app import create_app
    from workflow_engine.users import create_user

    create_user(bench.engine.store, "soak", "soak password 0123456789", "admin")
    client = TestClient(create_app(bench.settings, bench.engine))  # (no lifespan: the engine stays open)
    form = {"username": "soak", "password": "soak password 0123456789"}
    token = client.post("/api/v1/auth/token", data=form).json()["access_token"]
    assert client.post("/ui/login", data=form, follow_redirects=False).status_code == 303
    bearer = {"Authorization": f"Bearer {token}"}
    e = t.executions
    with bench.engine.store.reading() as conn:
        failed = conn.execute(sa.select(e.c.id).where(e.c.status == "failed").limit(1)).scalar_one()
    mapped = bench.workflow("soakmap", map_of("soakmap", 10_000))
    big = bench.engine.start(mapped).id
    bench.finished([big], 600)
    pairs = [
        ("list", "/ui/executions", "/api/v1/executions?limit=50"),
        ("execution", f"/ui/executions/{failed}", f"/api/v1/executions/{failed}"),
        ("10,000-item map", f"/ui/executions/{big}", f"/api/v1/executions/{big}"),
    ]
    found = []
    for name, page, route in pairs:
        timings: dict[str, float] = {}
        sent: dict[str, int] = {}
        size = 0
        for label, path, headers in (("page", page, {}), ("json", route, bearer)):
            answer = client.get(path, headers=headers)
            assert answer.status_code == 200, path
            size = size or len(answer.content)
            with statements(bench) as seen:
                client.get(path, headers=headers)
            sent[label] = len(seen)
            seconds = []
            for _ in range(7):
                began = time.perf_counter()
                client.get(path, headers=headers)
                seconds.append(time.perf_counter() - began)
            timings[label] = statistics.median(seconds) * 1000
        ratio = timings["page"] / timings["json"]
        found.append(
            {
                "name": name,
                "page_ms": round(timings["page"], 1),
                "json_ms": round(timings["json"], 1),
                "ratio": round(ratio, 2),
                "page_bytes": size,
                "page_selects": sent["page"],
                "json_selects": sent["json"],
            }
        )
        bench.say(
            f"  monitor {name}: {timings['page']:.1f} ms against {timings['json']:.1f} ms JSON ({ratio:.2f}x)"
        )
    return found


def w2(bench: Bench) -> float:
    """One W2 burst: 200 five-step chains, steps per second."""
    workflow = bench.workflow("burst5", chain_of("burst5", 5))
    began = datetime.now(UTC)
    ids = [bench.engine.start(workflow, {"n": n}).id for n in range(200)]
    return 200 * 5 / (bench.finished(ids, 600) - began).total_seconds()


def purge_under_load(bench: Bench) -> dict[str, Any]:
    alone = [w2(bench) for _ in range(3)]
    bench.say(f"  W2 alone: {', '.join(f'{x:.0f}' for x in alone)} steps/s")
    argv = [sys.executable, "-m", "workflow_engine", "db", "purge", "--older-than", "30d", "--json"]
    began = time.perf_counter()
    purge = subprocess.Popen(argv, env=bench.cluster.env, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    during = []
    while purge.poll() is None:
        during.append(w2(bench))
        bench.say(f"  W2 during the purge: {during[-1]:.0f} steps/s")
    seconds = time.perf_counter() - began
    out, _ = purge.communicate()
    if purge.returncode != 0:
        raise RuntimeError(f"wfe db purge exited {purge.returncode}")
    alone += [w2(bench) for _ in range(3)]  # (alone again after it: the machine's pace drifts)
    bench.say(f"  W2 alone after: {', '.join(f'{x:.0f}' for x in alone[3:])} steps/s")
    report = json.loads(out)
    return {
        "purge": report,
        "purge_seconds": round(seconds, 1),
        "executions_per_second": round(report["executions"] / seconds),
        "rows_per_second": round(sum(report["rows"].values()) / seconds),
        "w2_alone_steps_per_s": round(statistics.median(alone), 1),
        "w2_during_steps_per_s": round(statistics.median(during), 1) if during else None,
        "w2_bursts_during": len(during),
        "ratio": round(statistics.median(during) / statistics.median(alone), 3) if during else None,
    }


def vacuumed(bench: Bench) -> int:
    with bench.engine.store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for table in TABLES:
            conn.exec_driver_sql(f"VACUUM FULL {table.name}")
        return int(conn.exec_driver_sql("SELECT pg_database_size(current_database())").scalar_one())


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    parser.add_argument("--executions", type=int, default=100_000)
    parser.add_argument("--keep", type=int, default=10_000)
    parser.add_argument("--rest", type=float, help="WFE_PURGE_REST for the purge (default: the setting)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "soak.json")
    args = parser.parse_args()
    redis_url, server_url = services.redis_url(), services.postgres_url()
    if redis_url is None or server_url is None:
        sys.exit("the soak needs Redis and PostgreSQL (standard local ports, or WFE_TEST_* URLs)")
    log_dir = Path(tempfile.mkdtemp(prefix="wfe-soak-"))
    if args.rest is not None:
        os.environ["WFE_PURGE_REST"] = str(args.rest)
    bench = Bench(redis_url, services.with_scheme(server_url, "postgresql"), 2, log_dir)
    began = time.monotonic()
    try:
        seed(bench, args.executions, args.keep)
        before = sizes(bench)
        bench.say(f"  before: {json.dumps(before)}")
        latency = listings(bench)
        monitor = pages_against_json(bench)
        purged = purge_under_load(bench)
        after = sizes(bench)
        after["database_bytes_after_vacuum_full"] = vacuumed(bench)
    finally:
        bench.close()
    document = {
        "when": datetime.now(UTC).isoformat(),
        "executions": args.executions,
        "keep": args.keep,
        "purge_rest": bench.settings.purge_rest,
        "seconds": round(time.monotonic() - began),
        "before": before,
        "listings": latency,
        "monitor": monitor,
        "purge": purged,
        "after": after,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=2, default=str))
    print(report(document))
    print(f"\nJSON in {args.out}; logs in {log_dir}")


def report(document: dict[str, Any]) -> str:
    mb = 1024 * 1024
    lines = [
        f"S4 soak: {document['executions']} executions, all but the last {document['keep']} purged"
        f" (WFE_PURGE_REST={document['purge_rest']})"
    ]
    for when in ("before", "after"):
        sized = document[when]
        rows = ", ".join(
            f"{name} {v['rows']} rows {v['bytes'] / mb:.0f} MB" for name, v in sized["tables"].items()
        )
        lines.append(f"  {when}: {rows}; database {sized['database_bytes'] / mb:.0f} MB")
    vacuumed_mb = document["after"]["database_bytes_after_vacuum_full"] / mb
    lines.append(f"  after VACUUM FULL: database {vacuumed_mb:.0f} MB")
    p = document["purge"]
    lines.append(
        f"  purge: {p['purge']['executions']} executions in {p['purge_seconds']} s"
        f" ({p['executions_per_second']}/s, {p['rows_per_second']} rows/s)"
    )
    lines.append(
        f"  W2 during the purge: {p['w2_during_steps_per_s']} steps/s"
        f" against {p['w2_alone_steps_per_s']} alone = {p['ratio']}x ({p['w2_bursts_during']} bursts)"
    )
    for item in document["monitor"]:
        lines.append(
            f"  monitor {item['name']} page: {item['page_ms']} ms against {item['json_ms']} ms for its JSON"
            f" route ({item['ratio']}x; {item['page_selects']} and {item['json_selects']} SELECTs;"
            f" {item['page_bytes']:,} bytes)"
        )
    for item in document["listings"]:
        lines.append(f"  {item['name']}: {item['median_ms']} ms")
        for plan in item["plans"]:
            scans = f"; seq scan of {', '.join(plan['sequential_scans'])}" if plan["sequential_scans"] else ""
            lines.append(f"    indexes {', '.join(plan['indexes']) or '-'}{scans}: {plan['statement'][:90]}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
