"""Schedules fired by real coordinators: two `wfe coordinator` processes on Redis and PostgreSQL
start each fire time exactly once, and go on when one of them is killed."""

from __future__ import annotations

import signal
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest

from tests.integration.conftest import FAST, broker_settings, start_cluster
from workflow_engine.definitions import WorkflowBuilder
from workflow_engine.settings import Settings
from workflow_engine.store.listing import ExecutionQuery

pytestmark = pytest.mark.long


SCHEDULES = ("tick-a", "tick-b", "tick-c")


def scheduled_at(cluster_engine: object, name: str) -> list[str]:
    views, _ = cluster_engine.executions(ExecutionQuery(workflow="tick", limit=1000))  # type: ignore[attr-defined]
    return [v.metadata["scheduled_at"] for v in views if v.metadata.get("schedule") == name]


def test_two_coordinators_fire_each_time_once_and_survive_one_being_killed(
    redis_url: str, pg_module_url: str, tmp_path: Path
) -> None:
    settings = Settings(
        database_url=pg_module_url,
        **broker_settings("redis", redis_url),
        **{**FAST, "schedule_interval": 0.2},
    )
    cluster = start_cluster(settings, tmp_path / "logs")
    second = cluster.processes.start_coordinator("coordinator2")
    engine = cluster.engine
    try:
        engine.register(WorkflowBuilder("tick").agent("one", "echo").build())
        for name in SCHEDULES:
            # a catch-up window: the fire times before the coordinators are up start late, once each
            engine.schedules.create(name, "tick", every=1, overlap="allow_all", catchup_window=60)
        cluster.wait_for(
            lambda: all(len(scheduled_at(engine, n)) >= 3 for n in SCHEDULES), 30, "three fires each"
        )
        second.signal(signal.SIGKILL)  # one coordinator dies mid-stream
        before = {n: len(scheduled_at(engine, n)) for n in SCHEDULES}
        cluster.wait_for(
            lambda: all(len(scheduled_at(engine, n)) >= before[n] + 3 for n in SCHEDULES),
            30,
            "fires after the kill",
        )
        cluster.processes.start_coordinator("coordinator3")  # and another comes back
        cluster.wait_for(
            lambda: all(len(scheduled_at(engine, n)) >= before[n] + 6 for n in SCHEDULES),
            30,
            "fires with two again",
        )
        for name in SCHEDULES:
            engine.schedules.pause(name)
        for name in SCHEDULES:
            times = scheduled_at(engine, name)
            assert [t for t, n in Counter(times).items() if n > 1] == [], f"{name} fired twice"
            view = engine.schedules.get(name)
            created = view.created_at
            assert created is not None
            # every second from the first after creation to the last fire time, each once: none
            # lost, none twice
            last = max(times)
            expected = []
            moment = created + timedelta(seconds=1)
            while moment.isoformat() <= last:
                expected.append(moment.isoformat())
                moment += timedelta(seconds=1)
            assert sorted(times) == expected
        for view in engine.executions(ExecutionQuery(workflow="tick", limit=1000))[0]:
            cluster.wait(view.id, timeout=60)
    finally:
        cluster.processes.stop(graceful=False)
        engine.close()
