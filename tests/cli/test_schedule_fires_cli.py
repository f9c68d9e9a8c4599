"""`wfe schedule create --every` shows the first fire time it keeps, and `wfe schedule show`
lists the fire times that started nothing with why: a real process on a real database."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

from tests.support import services
from tests.support.harness import Harness
from workflow_engine.definitions import WorkflowBuilder
from workflow_engine.store import migrate


def wfe(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "workflow_engine", *args],
        capture_output=True,
        text=True,
        env={
            **services.environment_without_settings(),
            "WFE_DATABASE_URL": f"sqlite:///{tmp_path / 'wfe.db'}",
        },
        cwd=tmp_path,
        timeout=60,
        check=False,
    )


def test_an_interval_schedule_shows_its_first_fire_one_interval_on_and_lists_a_skip(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'wfe.db'}"
    migrate.upgrade(url)
    harness = Harness(url)
    try:
        harness.register(WorkflowBuilder("report", input_schema={"type": "object"}).agent("build"))
    finally:
        harness.close()
    made = wfe(tmp_path, "schedule", "create", "poll", "--workflow", "report", "--every", "30", "--json")
    assert made.returncode == 0, made.stderr
    body = json.loads(made.stdout)
    created = datetime.fromisoformat(body["created_at"])
    first = [datetime.fromisoformat(t) for t in body["next_fire_times"]]
    assert first[:2] == [created + timedelta(seconds=30), created + timedelta(seconds=60)]

    started = wfe(tmp_path, "schedule", "trigger", "poll", "--json")
    assert started.returncode == 0, started.stderr
    running = json.loads(started.stdout)["execution_id"]
    skipped = wfe(tmp_path, "schedule", "trigger", "poll", "--json")  # the first still runs
    assert json.loads(skipped.stdout)["action"] == "skipped"

    shown = wfe(tmp_path, "schedule", "show", "poll")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    heading = lines.index("  fire times that started nothing:")
    assert lines[heading + 1].endswith(f"skipped: overlap skip: the previous execution ({running}) still ran")
    document = json.loads(wfe(tmp_path, "schedule", "show", "poll", "--json").stdout)
    assert [(f["action"], f["count"]) for f in document["skipped_fires"]] == [("skipped", 1)]
