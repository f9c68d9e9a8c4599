"""`wfe coordinator --once`: one reconciliation pass by hand, against Redis and PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.conftest import ROOT
from tests.integration.conftest import (
    FAST,
    broker_settings,
    flush_redis_queues,
    ledger_lines,
    queued_messages,
)
from workflow_engine.definitions import WorkflowBuilder
from workflow_engine.engine import Engine
from workflow_engine.processes import LocalCluster, settings_env
from workflow_engine.settings import Settings
from workflow_engine.store import schema as t

pytestmark = [pytest.mark.slow, pytest.mark.long]


def reconcile_once(settings: Settings, copies: int = 1) -> list[dict[str, object]]:
    """Run ``copies`` passes of `wfe coordinator --once` at the same time; their reports."""
    argv = [sys.executable, "-m", "workflow_engine", "coordinator", "--once", "--json"]
    env = {**os.environ, **settings_env(settings)}
    runs = [
        subprocess.Popen(argv, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(copies)
    ]
    reports = []
    for run in runs:
        out, err = run.communicate(timeout=60)
        assert run.returncode == 0, err
        reports.append(json.loads(out))
    return reports


def test_coordinator_once_publishes_a_lost_message_again_once_however_many_run(
    redis_url: str, pg_module_url: str, ledger: Path, tmp_path: Path
) -> None:
    settings = Settings(
        database_url=pg_module_url, **broker_settings("redis", redis_url), **{**FAST, "redispatch_after": 60}
    )
    with Engine.from_settings(settings) as engine:
        engine.register(WorkflowBuilder("lost").agent("a", "echo"))
        execution = engine.start("lost", metadata={"ledger": str(ledger)})
        assert flush_redis_queues(settings) == 1  # no worker ran: the broker lost the only message
        with engine.store.transaction() as tx:  # published long enough ago to be overdue
            r = t.step_runs
            since = datetime.now(UTC) - timedelta(seconds=2 * settings.redispatch_after)
            tx.execute(sa.update(r).where(r.c.execution_id == execution.id).values(published_at=since))

        reports = reconcile_once(settings, copies=3)  # three operators at once
        assert sorted(r["republished"] for r in reports) == [0, 0, 1], reports
        assert all(r["errors"] == [] for r in reports)
        assert queued_messages(settings) == 1

        with LocalCluster(settings, tmp_path / "logs", cwd=ROOT, with_coordinator=False):
            final = engine.wait(execution.id, timeout=60)
        assert final.status == "completed", final
        assert [line[1] for line in ledger_lines(ledger)] == ["a"]
        reasons = [(e.step_name, e.actor, e.reason) for e in engine.store.events(execution.id)]
        assert ("a", "reconciler", "publishing again: its message is overdue") in reasons
