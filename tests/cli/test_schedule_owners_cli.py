"""`wfe schedule` looks a name up among the deployment's schedules, or a user's with --owner;
`list` shows everyone's with their owners; an unknown owner or name is one line and a non-zero exit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.test_settings_cli import wfe
from tests.support.harness import Harness
from workflow_engine.definitions import WorkflowBuilder
from workflow_engine.engine import Engine
from workflow_engine.store import migrate

pytestmark = pytest.mark.long


def test_wfe_schedule_names_a_user_s_schedule_with_owner(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'wfe.db'}"
    migrate.upgrade(url)
    harness = Harness(url)
    try:
        harness.register(WorkflowBuilder("report").agent("build"))
        alice = harness.store.create_user("alice", None, "operator").id
        engine = Engine(harness.settings, harness.store, dispatcher=harness.broker)
        engine.schedules.create("nightly", "report", every=3600, owner_id=alice, actor="alice")
        made = wfe(tmp_path, "schedule", "create", "nightly", "--workflow", "report", "--every", "60")
        assert made.returncode == 0, made.stderr  # the deployment's own, of the same name

        listed = json.loads(wfe(tmp_path, "schedule", "list", "--json").stdout)
        assert sorted((s["name"], s["owner"], s["every"]) for s in listed) == [
            ("nightly", "alice", 3600),
            ("nightly", "system", 60),
        ]
        mine = json.loads(wfe(tmp_path, "schedule", "show", "nightly", "--json").stdout)
        assert (mine["owner"], mine["every"]) == ("system", 60)
        paused = wfe(tmp_path, "schedule", "pause", "nightly", "--owner", "alice", "--json")
        assert paused.returncode == 0, paused.stderr
        assert json.loads(paused.stdout)["owner"] == "alice" and json.loads(paused.stdout)["paused"]
        assert not json.loads(wfe(tmp_path, "schedule", "show", "nightly", "--json").stdout)["paused"]

        for name, owner in (("nightly", "nobody"), ("other", "alice")):
            missing = wfe(tmp_path, "schedule", "show", name, "--owner", owner)
            assert missing.returncode != 0, missing.stderr
            assert len(missing.stderr.strip().splitlines()) == 1 and "Traceback" not in missing.stderr
    finally:
        harness.close()
