"""The benchmark: the engine against raw Celery canvas, interleaved in one run.

Both sides use the same Redis broker and prefork workers with the same concurrency. The engine
persists every step result and transition in PostgreSQL (as in production) and is timed from
the client's start call to the execution's ``finished_at`` written by the worker that finished
it; canvas is timed from ``apply_async`` to its result arriving through the Redis result
backend.
"""

from __future__ import annotations

import json

from celery import chain, chord, group

from bench import flow_control, sealing
from bench.harness import Bench, Result, chain_of, fan_of, interleaved, map_of, parent_of


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
