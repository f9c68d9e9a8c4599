"""Signals on real processes: a signal sent while the step before is still running is kept and
taken by a real worker's decision; one sent to a waiting step moves it on; a wait step's timeout
fires through the broker."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.conftest import Cluster
from workflow_engine.definitions import WorkflowBuilder

pytestmark = pytest.mark.slow

AMOUNT = {"type": "object", "required": ["amount"], "properties": {"amount": {"type": "number"}}}


def payment(name: str, timeout: float | None = None) -> WorkflowBuilder:
    return (
        WorkflowBuilder(name)
        .agent("invoice", "echo", config={"sleep": 0.5})
        .wait("paid", signal="payment", input_schema=AMOUNT, timeout=timeout, after="invoice")
        .agent("ship", "echo", after="paid")
    )


def test_a_signal_sent_before_its_step_is_reached_is_taken_when_it_is(
    core_cluster: Cluster, ledger: Path
) -> None:
    engine = core_cluster.engine
    engine.register(payment("pay-early"))
    view = engine.start("pay-early", {}, metadata={"ledger": str(ledger)})
    sent = engine.signal(view.id, "payment", {"amount": 7}, user_id="billing")
    assert core_cluster.statuses(view.id).get("paid", "pending") == "pending"  # invoice still sleeps
    assert sent.status in ("initialized", "running")
    final = core_cluster.wait(view.id)
    assert final.status == "completed", final.error
    [paid] = engine.logs(view.id, step_name="paid")
    assert paid["output_data"] == {"amount": 7} and paid["completed_by"] == "billing"


def test_a_signal_moves_a_waiting_step_on_and_a_timeout_fails_one(
    core_cluster: Cluster, ledger: Path
) -> None:
    engine = core_cluster.engine
    engine.register(payment("pay-late"))
    view = engine.start("pay-late", {}, metadata={"ledger": str(ledger)})
    core_cluster.wait_for(lambda: engine.get(view.id).status == "waiting", what="the wait step")
    engine.signal(view.id, "payment", {"amount": 1}, user_id="billing")
    assert core_cluster.wait(view.id).status == "completed"

    engine.register(payment("pay-never", timeout=1))
    never = engine.start("pay-never", {}, metadata={"ledger": str(ledger)})
    core_cluster.wait_for(lambda: engine.get(never.id).status == "failed", what="the timeout")
    final = engine.get(never.id)
    assert final.error is not None
    assert final.error["type"] == "timeout" and "no signal 'payment' within 1 s" in final.error["message"]
