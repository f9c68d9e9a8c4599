"""`wfe errors` lists the groups of failed attempts; `wfe errors retry GROUP` retries them."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.test_settings_cli import wfe
from tests.support.harness import Harness
from workflow_engine.definitions import WorkflowBuilder
from workflow_engine.errors import FatalError
from workflow_engine.store import migrate


def test_wfe_errors_lists_and_retries_a_group(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'wfe.db'}"
    migrate.upgrade(url)
    harness = Harness(url)
    try:
        harness.register(WorkflowBuilder("job").agent("a"))
        harness.agent("a", lambda ctx: (_ for _ in ()).throw(FatalError("quota 17 exceeded", code="QUOTA")))
        failed = [harness.run("job").id for _ in range(2)]
        # the harness's fixed clock is ahead of the real one: its attempts are within any window
        listed = wfe(tmp_path, "errors", "--since", "1000d", "--json")
        assert listed.returncode == 0, listed.stderr
        (group,) = json.loads(listed.stdout)
        assert group["message"] == "quota <n> exceeded" and sorted(group["execution_ids"]) == sorted(failed)
        assert wfe(tmp_path, "errors", "--since", "later").returncode == 2
        retried = wfe(tmp_path, "errors", "--since", "1000d", "retry", group["group"], "--json")
        assert retried.returncode == 0, retried.stderr
        assert json.loads(retried.stdout)["changed"] == 2
        assert {harness.store.get_execution(e).status for e in failed} == {"running"}
    finally:
        harness.close()
