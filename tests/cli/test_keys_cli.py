"""`wfe keys new` and `wfe keys rotate`: every stored secret sealed again with the new first key,
a second run changes nothing, the old key can then go; without a key, one line and exit 1."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.cli.test_settings_cli import wfe
from tests.support.harness import Harness
from workflow_engine.core.secrets import SEALED, is_sealed
from workflow_engine.definitions import WorkflowBuilder
from workflow_engine.secrets import Binding, Keyring
from workflow_engine.store import migrate
from workflow_engine.store import schema as t

pytestmark = pytest.mark.long


def tokens(value: Any) -> list[str]:
    if is_sealed(value):
        return [value[SEALED]]
    if isinstance(value, dict):
        return [token for inner in value.values() for token in tokens(inner)]
    if isinstance(value, list):
        return [token for inner in value for token in tokens(inner)]
    return []


def stored_tokens(harness: Harness) -> list[tuple[str, Binding]]:
    """Each sealed value stored, with the binding of the execution that holds it."""
    e = t.executions
    runs = t.step_runs.join(e, e.c.id == t.step_runs.c.execution_id)
    with harness.store.engine.connect() as conn:
        rows = [
            *conn.execute(sa.select(e.c.input, e.c.owner_id, e.c.id)),
            *conn.execute(sa.select(t.step_runs.c.output, e.c.owner_id, e.c.id).select_from(runs)),
        ]
    return [(token, Binding.execution(owner, id_)) for value, owner, id_ in rows for token in tokens(value)]


def test_wfe_keys_rotate_seals_everything_again_with_the_first_key_and_can_run_again(tmp_path: Path) -> None:
    old = wfe(tmp_path, "keys", "new").stdout.strip()
    new = wfe(tmp_path, "keys", "new").stdout.strip()
    assert old != new and Keyring(old) and Keyring(new)
    url = f"sqlite:///{tmp_path / 'wfe.db'}"
    migrate.upgrade(url)
    harness = Harness(url, encryption_keys=old)
    try:
        harness.register(WorkflowBuilder("vault").agent("fetch").secrets("input.key", "steps.fetch.step"))
        for n in range(3):
            assert harness.run("vault", input_data={"key": f"k{n}"}).status == "completed"
        before = stored_tokens(harness)
        assert len(before) == 6
        refused = wfe(tmp_path, "keys", "rotate")
        assert refused.returncode == 1 and "WFE_ENCRYPTION_KEYS" in refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1 and "Traceback" not in refused.stderr
        rotated = wfe(tmp_path, "keys", "rotate", "--json", WFE_ENCRYPTION_KEYS=f"{new},{old}")
        assert rotated.returncode == 0, rotated.stderr
        assert json.loads(rotated.stdout)["rotated"] == {"wfe_executions": 3, "wfe_step_runs": 3}
        after = stored_tokens(harness)
        alone = Keyring(new)
        assert sorted(alone.open(*sealed) for sealed in after) == sorted(
            Keyring(old).open(*sealed) for sealed in before
        )
        again = wfe(tmp_path, "keys", "rotate", "--json", WFE_ENCRYPTION_KEYS=f"{new},{old}")
        assert json.loads(again.stdout)["rotated"] == {"wfe_executions": 0, "wfe_step_runs": 0}
    finally:
        harness.close()
