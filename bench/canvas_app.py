"""The raw Celery baseline: the same work as plain tasks composed with canvas primitives.

Configured from the environment the benchmark sets (BENCH_BROKER, BENCH_BACKEND, BENCH_QUEUE).
"""

from __future__ import annotations

import os
import time
from typing import Any

from celery import Celery

app = Celery(
    "bench_canvas",
    broker=os.environ.get("BENCH_BROKER", "redis://127.0.0.1:6379/0"),
    backend=os.environ.get("BENCH_BACKEND", "redis://127.0.0.1:6379/1"),
)
app.conf.update(
    task_default_queue=os.environ.get("BENCH_QUEUE", "bench.canvas"),
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    broker_connection_retry_on_startup=True,
    result_expires=600,
)


@app.task(name="bench.canvas.noop", shared=False)
def noop(*_: Any) -> dict[str, Any]:
    return {"ok": True}


@app.task(name="bench.canvas.sleep10", shared=False)
def sleep10(*_: Any) -> dict[str, Any]:
    time.sleep(0.01)
    return {"ok": True}


@app.task(name="bench.canvas.join", shared=False)
def join(results: list[Any]) -> dict[str, Any]:
    return {"joined": len(results)}
