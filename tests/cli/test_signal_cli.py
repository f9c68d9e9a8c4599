"""`wfe signal`: kept, then taken when the wait step is reached; bad data and an ended execution
are one line on stderr with a non-zero exit, and change nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.test_settings_cli import wfe
from tests.support.harness import Harness
from workflow_engine.definitions import WorkflowBuilder
from workflow_engine.store import migrate

pytestmark = pytest.mark.long


AMOUNT = {"type": "object", "required": ["amount"], "properties": {"amount": {"type": "number"}}}


def test_wfe_signal_is_kept_taken_checked_and_refused_once_ended(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'wfe.db'}"
    migrate.upgrade(url)
    harness = Harness(url)
    try:
        harness.register(
            WorkflowBuilder("pay")
            .agent("invoice")
            .wait("paid", signal="payment", input_schema=AMOUNT, after="invoice")
            .agent("ship", after="paid")
        )
        record = harness.start("pay")  # invoice queued: the signal comes first

        bad = wfe(tmp_path, "signal", record.id, "payment", "--data", '{"amount": "x"}')
        assert bad.returncode == 2 and "Traceback" not in bad.stderr
        assert len(bad.stderr.strip().splitlines()) == 1 and "amount" in bad.stderr
        unknown = wfe(tmp_path, "signal", record.id, "refund")
        assert unknown.returncode == 2 and "waits for signal 'refund'" in unknown.stderr

        sent = wfe(
            tmp_path, "signal", record.id, "payment", "--data", '{"amount": 4}', "--user", "ops", "--json"
        )
        assert sent.returncode == 0, sent.stderr
        assert json.loads(sent.stdout)["execution_id"] == record.id
        harness.work()
        assert harness.view(record.id).status == "completed"
        paid = harness.runs(record.id, "paid")[0]
        assert paid.output == {"amount": 4} and paid.completed_by == "ops"

        ended = wfe(tmp_path, "signal", record.id, "payment", "--data", '{"amount": 4}')
        assert ended.returncode != 0 and "execution is completed" in ended.stderr
        assert "Traceback" not in ended.stderr
    finally:
        harness.close()
