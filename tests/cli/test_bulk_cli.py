"""`wfe bulk`: a dry run counts, the verb changes each matching execution, bad options are one
line on stderr with exit 2."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.test_settings_cli import wfe
from tests.support.harness import Harness
from workflow_engine.definitions import WorkflowBuilder
from workflow_engine.store import migrate


def test_wfe_bulk_cancels_what_its_filters_match(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'wfe.db'}"
    migrate.upgrade(url)
    harness = Harness(url)
    try:
        harness.register(WorkflowBuilder("hold").agent("h").wait("go", after="h"))
        harness.register(WorkflowBuilder("other").agent("o").wait("go", after="o"))
        held = [harness.run("hold").id for _ in range(3)]
        other = harness.run("other").id
        dry = wfe(
            tmp_path, "bulk", "cancel", "--workflow", "hold", "--status", "waiting", "--dry-run", "--json"
        )
        assert dry.returncode == 0, dry.stderr
        assert json.loads(dry.stdout)["would_change"] == 3
        done = wfe(tmp_path, "bulk", "cancel", "--workflow", "hold", "--reason", "cleanup", "--user", "ops")
        assert done.returncode == 0 and "3 matched; 3 changed, 0 refused" in done.stdout
        assert {harness.store.get_execution(e).status for e in held} == {"cancelled"}
        assert harness.store.get_execution(other).status == "waiting"
        bare = wfe(tmp_path, "bulk", "cancel")
        assert (
            bare.returncode == 2 and "at least one filter" in bare.stderr and "Traceback" not in bare.stderr
        )
    finally:
        harness.close()
