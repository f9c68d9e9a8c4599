"""`wfe status`, `wfe list --parent` and `wfe logs --index` on an execution with a map and
children (run in-process on SQLite, then read by the command as a user would)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.test_settings_cli import wfe
from tests.support.harness import Harness
from workflow_engine.definitions import WorkflowBuilder
from workflow_engine.store import migrate

pytestmark = pytest.mark.long


def test_status_shows_a_maps_progress_and_list_and_logs_follow_children_and_items(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'wfe.db'}"
    migrate.upgrade(url)
    harness = Harness(url)
    try:
        harness.agent("list", lambda ctx: {"items": ["a", "b"]})
        harness.register(WorkflowBuilder("kid").agent("k"))
        harness.register(
            WorkflowBuilder("fam")
            .agent("list")
            .map("each", "steps.list.items", agent="w", after="list")
            .map("kids", "steps.list.items", workflow="kid", after="list")
        )
        view = harness.run("fam")
    finally:
        harness.close()
    assert view.status == "completed"

    status = wfe(tmp_path, "status", view.id, COLUMNS="200")
    assert status.returncode == 0, status.stderr
    assert "succeeded 2/2 done" in status.stdout
    assert f"wfe list --parent {view.id}" in status.stdout
    document = json.loads(wfe(tmp_path, "status", view.id, "--json").stdout)
    each = next(step for step in document["steps"] if step["name"] == "each")
    assert each["items"] == {"total": 2, "done": 2, "failed": 0, "running": 0, "pending": 0, "cancelled": 0}
    assert len(document["children"]) == 2

    listed = json.loads(wfe(tmp_path, "list", "--parent", view.id, "--json").stdout)
    assert listed["total"] == 2 and {e["workflow"] for e in listed["executions"]} == {"kid"}
    child = listed["executions"][0]["execution_id"]
    shown = wfe(tmp_path, "status", child, COLUMNS="200")
    assert f"child of {view.id}, step kids[" in shown.stdout

    logs = json.loads(wfe(tmp_path, "logs", view.id, "--step", "each", "--index", "1", "--json").stdout)
    assert [(entry["index"], entry["status"]) for entry in logs] == [(1, "succeeded")]
    table = wfe(tmp_path, "logs", view.id, "--step", "each", COLUMNS="200").stdout
    assert "each[0]" in table and "each[1]" in table
    bad = wfe(tmp_path, "logs", view.id, "--index", "-3")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
