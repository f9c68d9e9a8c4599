"""Quotas and size limits at the command line: an input too large to store, signal data too
large, and one signal more than an execution keeps are one line on stderr with a non-zero exit,
and change nothing."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.test_settings_cli import wfe
from tests.support.harness import Harness
from workflow_engine.definitions import WorkflowBuilder
from workflow_engine.store import migrate


def one_line(answer: str) -> bool:
    return len(answer.strip().splitlines()) == 1 and "Traceback" not in answer


def test_what_a_quota_or_a_size_limit_refuses_is_one_line_at_the_command_line(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'wfe.db'}"
    migrate.upgrade(url)
    harness = Harness(url)
    limits = {"WFE_MAX_INPUT_BYTES": "1000", "WFE_MAX_OUTPUT_BYTES": "200", "WFE_QUOTA_SIGNALS_KEPT": "1"}
    try:
        harness.register(
            WorkflowBuilder("pay").agent("invoice").wait("paid", signal="payment", after="invoice")
        )
        large = wfe(tmp_path, "submit", "pay", "--input", json.dumps({"text": "x" * 2000}), **limits)
        assert large.returncode != 0 and one_line(large.stderr), large.stderr
        assert "WFE_MAX_INPUT_BYTES" in large.stderr
        started = wfe(tmp_path, "submit", "pay", "--input", "{}", "--json", **limits)
        assert started.returncode == 0, started.stderr
        execution_id = json.loads(started.stdout)["execution_id"]

        data = json.dumps({"text": "x" * 300})
        too_large = wfe(tmp_path, "signal", execution_id, "payment", "--data", data, **limits)
        assert too_large.returncode != 0 and one_line(too_large.stderr), too_large.stderr
        assert "WFE_MAX_OUTPUT_BYTES" in too_large.stderr
        kept = wfe(tmp_path, "signal", execution_id, "payment", "--data", "{}", **limits)
        assert kept.returncode == 0, kept.stderr
        more = wfe(tmp_path, "signal", execution_id, "payment", "--data", "{}", **limits)
        assert more.returncode != 0 and one_line(more.stderr), more.stderr
        assert "WFE_QUOTA_SIGNALS_KEPT" in more.stderr
        with harness.store.transaction() as tx:
            assert len(tx.signals(execution_id)) == 1
    finally:
        harness.close()
