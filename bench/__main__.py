"""`python -m bench [--quick]`: the engine against raw Celery canvas; prints a table, writes JSON."""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import celery

from bench.harness import ROOT, Bench
from bench.runner import table, workloads
from tests.support import services

SCHEMES = {"psycopg": "postgresql", "psycopg2": "postgresql+psycopg2"}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="fewer runs and smaller scale tests (under two minutes)"
    )
    parser.add_argument(
        "--concurrency", type=int, default=2, help="worker processes on each side (default 2)"
    )
    parser.add_argument(
        "--driver",
        choices=sorted(SCHEMES),
        default="psycopg",
        help="the engine's PostgreSQL driver (default psycopg: what postgresql:// means)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "latest.json")
    args = parser.parse_args()
    redis_url = services.redis_url()
    server_url = services.postgres_url()
    if redis_url is None or server_url is None:
        sys.exit(
            "the benchmark needs Redis and PostgreSQL "
            "(standard local ports, or WFE_TEST_REDIS_URL / WFE_TEST_DATABASE_URL)"
        )
    postgres_url = services.with_scheme(server_url, SCHEMES[args.driver])
    distribution = "psycopg2-binary" if args.driver == "psycopg2" else "psycopg"
    driver = f"{args.driver} {importlib.metadata.version(distribution)}"
    print(f"engine's PostgreSQL driver: {driver} ({SCHEMES[args.driver]}://)", flush=True)
    log_dir = Path(tempfile.mkdtemp(prefix="wfe-bench-"))
    began = time.monotonic()
    bench = Bench(redis_url, postgres_url, args.concurrency, log_dir)
    try:
        results = workloads(bench, args.quick)
    finally:
        bench.close()
    elapsed = time.monotonic() - began
    print(f"PostgreSQL driver: {driver}")
    print(table(results))
    document = {
        "when": datetime.now(UTC).isoformat(),
        "quick": args.quick,
        "concurrency": args.concurrency,
        "python": platform.python_version(),
        "celery": celery.__version__,
        "driver": driver,
        "machine": {"cpus": __import__("os").cpu_count(), "platform": platform.platform()},
        "seconds": round(elapsed, 1),
        "results": [r.row() for r in results],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=2, default=str))
    print(f"\n{len(results)} workloads in {elapsed:.0f} s; JSON in {args.out}; logs in {log_dir}")


if __name__ == "__main__":
    main()
