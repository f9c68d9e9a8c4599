"""`wfe db purge`: a dry run counts, --archive writes one JSON line per execution before it goes,
running ones stay, and bad options are one line on stderr with exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.test_settings_cli import wfe
from tests.support.harness import Harness
from workflow_engine.definitions import WorkflowBuilder
from workflow_engine.errors import ExecutionNotFound
from workflow_engine.store import migrate

pytestmark = pytest.mark.long


def test_wfe_db_purge_counts_archives_and_deletes_only_what_ended(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'wfe.db'}"
    migrate.upgrade(url)
    harness = Harness(url)
    try:
        harness.register(WorkflowBuilder("job").agent("a"))
        harness.register(WorkflowBuilder("hold").agent("h").wait("go", after="h"))
        # the harness's fixed clock is in 2030: these finish after the real now
        done = harness.run("job")
        held = harness.run("hold")
        for bad, where in [
            (("--older-than", "soon"), "not an age"),
            (("--older-than", "1d", "--status", "running"), "only ended"),
        ]:
            refused = wfe(tmp_path, "db", "purge", *bad)
            assert refused.returncode == 2 and where in refused.stderr and "Traceback" not in refused.stderr
            assert len(refused.stderr.strip().splitlines()) == 1
        none = wfe(tmp_path, "db", "purge", "--older-than", "0s", "--json")
        assert none.returncode == 0 and json.loads(none.stdout)["executions"] == 0
        with harness.store.transaction() as tx:  # move the ended one's finish to the past
            tx.update_execution(done.id, {"finished_at": harness.clock.now().replace(year=2020)})
        dry = wfe(tmp_path, "db", "purge", "--older-than", "30d", "--dry-run", "--json")
        assert dry.returncode == 0, dry.stderr
        assert json.loads(dry.stdout)["executions"] == 1 and harness.store.get_execution(done.id)
        archive = tmp_path / "archive.jsonl"
        gone = wfe(tmp_path, "db", "purge", "--older-than", "30d", "--archive", str(archive))
        assert gone.returncode == 0 and "purged 1 executions" in gone.stdout
        (line,) = archive.read_text().splitlines()
        assert json.loads(line)["execution"]["id"] == done.id
        with pytest.raises(ExecutionNotFound):
            harness.store.get_execution(done.id)
        assert harness.store.get_execution(held.id).status == "waiting"
    finally:
        harness.close()
