"""`wfe schedule`: create, list, show, pause, resume, trigger and delete as the contract words
them; bad options are one line on stderr with exit 2 and change nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.test_settings_cli import wfe
from tests.support.harness import Harness
from workflow_engine.definitions import WorkflowBuilder
from workflow_engine.store import migrate

pytestmark = pytest.mark.long


def test_wfe_schedule_manages_a_schedule_from_create_to_delete(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'wfe.db'}"
    migrate.upgrade(url)
    harness = Harness(url)
    try:
        harness.register(
            WorkflowBuilder(
                "ib-generation", input_schema={"type": "object", "required": ["project_id"]}
            ).agent("build")
        )
        made = wfe(
            tmp_path,
            *("schedule", "create", "nightly", "--workflow", "ib-generation", "--cron", "0 2 * * *"),
            *("--timezone", "Europe/Paris", "--input", '{"project_id": "p-1"}', "--overlap", "buffer_one"),
            *("--catchup-window", "3600", "--user", "ops", "--json"),
        )
        assert made.returncode == 0, made.stderr
        body = json.loads(made.stdout)
        assert (body["overlap"], body["catchup_window"], body["timezone"]) == (
            "buffer_one",
            3600,
            "Europe/Paris",
        )
        assert len(body["next_fire_times"]) == 5 and body["input"] == {"project_id": "p-1"}

        for args, where in [
            (("--cron", "0 2 * *"), "cron"),
            (("--every", "30", "--timezone", "Nowhere/Else"), "time zone"),
            (("--every", "30", "--input", '{"other": 1}'), "project_id"),
            (("--every", "30", "--overlap", "sometimes"), "overlap"),
        ]:
            bad = wfe(tmp_path, "schedule", "create", "bad", "--workflow", "ib-generation", *args)
            assert bad.returncode == 2, (args, bad.stderr)
            assert (
                len(bad.stderr.strip().splitlines()) == 1
                and where in bad.stderr
                and "Traceback" not in bad.stderr
            )

        listed = wfe(tmp_path, "schedule", "list", "--json")
        assert [s["name"] for s in json.loads(listed.stdout)] == ["nightly"]
        assert wfe(tmp_path, "schedule", "pause", "nightly", "--user", "ops").returncode == 0
        fired = wfe(tmp_path, "schedule", "trigger", "nightly", "--user", "ops", "--json")
        assert fired.returncode == 0, fired.stderr
        started = json.loads(fired.stdout)["execution_id"]
        assert harness.store.get_execution(started).metadata["schedule"] == "nightly"
        assert wfe(tmp_path, "schedule", "resume", "nightly", "--user", "ops").returncode == 0
        shown = wfe(tmp_path, "schedule", "show", "nightly")
        assert shown.returncode == 0 and started in shown.stdout and "next fire times: " in shown.stdout
        assert "paused by ops" in shown.stdout and "triggered by ops" in shown.stdout

        assert wfe(tmp_path, "schedule", "delete", "nightly", "--user", "ops").returncode == 0
        gone = wfe(tmp_path, "schedule", "show", "nightly")
        assert gone.returncode == 2 and "schedule 'nightly' not found" in gone.stderr
    finally:
        harness.close()
