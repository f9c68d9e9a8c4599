"""Prometheus metrics.

Two sources. The API exposes what the database knows, read at scrape time
(:class:`StoreCollector`: executions and step runs by status, open human tasks). Workers count
what they do as they do it (step attempts by agent and status, durations, queue wait, retries)
and expose it on ``wfe worker --metrics-port``, aggregated across the pool's processes with
prometheus-client's multiprocess mode.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from workflow_engine.decisions.outcomes import Claim
from workflow_engine.store import reports
from workflow_engine.store.repository import Store

DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)

STEP_ATTEMPTS = Counter(
    "wfe_step_attempts", "Step attempts finished by workers, by agent and outcome", ["agent", "status"]
)
STEP_DURATION = Histogram(
    "wfe_step_duration_seconds", "Time an agent ran for one attempt", ["agent"], buckets=DURATION_BUCKETS
)
QUEUE_WAIT = Histogram(
    "wfe_step_queue_wait_seconds",
    "Time from a step attempt being due to a worker starting it",
    ["agent"],
    buckets=DURATION_BUCKETS,
)
RETRIES = Counter("wfe_step_retries", "Attempts that failed transiently and were retried", ["agent"])
MAP_ITEMS = Counter(
    "wfe_map_item_attempts",
    "Attempts of map items finished by workers, by workflow, step and outcome",
    ["workflow", "step", "status"],
)


def observe_attempt(claim: Claim, duration_ms: int, result: str) -> None:
    """Count one finished attempt (called by the worker that ran it)."""
    agent = claim.step.served_as or claim.step.name
    STEP_ATTEMPTS.labels(agent, result).inc()
    STEP_DURATION.labels(agent).observe(duration_ms / 1000)
    QUEUE_WAIT.labels(agent).observe(max(0.0, (claim.started_at - claim.due_at).total_seconds()))
    if result == "retrying":
        RETRIES.labels(agent).inc()
    if claim.index is not None:
        MAP_ITEMS.labels(claim.workflow, claim.step.name, result).inc()


class StoreCollector(Collector):
    """Gauges read from the database when Prometheus scrapes."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def collect(self) -> Iterator[Any]:
        executions = reports.executions_by_status(self.store)
        runs = reports.runs_by_status_and_type(self.store)
        by_status = GaugeMetricFamily("wfe_executions", "Executions by status", labels=["status"])
        for status, count in executions.items():
            by_status.add_metric([status], count)
        yield by_status
        steps = GaugeMetricFamily("wfe_step_runs", "Step runs by status and type", labels=["status", "type"])
        for status, step_type, count in runs:
            steps.add_metric([status, step_type], count)
        yield steps


def api_registry(store: Store) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(StoreCollector(store))
    return registry
