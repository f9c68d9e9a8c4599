"""Signals and wait steps, on SQLite and PostgreSQL: taken at once or kept until their step is
reached, taken in order, checked against the step's schema, refused by an ended execution, and a
wait step's timeout."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.harness import Harness
from workflow_engine.definitions import WorkflowBuilder
from workflow_engine.errors import InputError, InvalidOperation, SignalNotFound

AMOUNT = {"type": "object", "required": ["amount"], "properties": {"amount": {"type": "number"}}}


def payment(timeout: float | None = None, required: bool = True) -> WorkflowBuilder:
    options: dict[str, Any] = {} if required else {"required": False}
    return (
        WorkflowBuilder("pay")
        .agent("invoice")
        .wait("paid", signal="payment", input_schema=AMOUNT, timeout=timeout, after="invoice", **options)
        .agent("ship", after="paid")
    )


def kept(harness: Harness, execution_id: str) -> list[str]:
    with harness.store.transaction() as tx:
        return [s.name for s in tx.signals(execution_id) if s.consumed_at is None]


def test_a_signal_completes_the_step_waiting_for_it(harness: Harness) -> None:
    harness.register(payment())
    seen: list[Any] = []
    harness.agent("ship", lambda ctx: seen.append(ctx.steps["paid"]) or {})
    view = harness.run("pay")
    assert view.status == "waiting" and harness.statuses(view.id)["paid"] == "waiting"
    assert harness.coordinator.signal(view.id, "payment", {"amount": 12.5}, "billing") == "paid"
    harness.work()
    assert harness.view(view.id).status == "completed" and seen == [{"amount": 12.5}]
    run = harness.runs(view.id, "paid")[0]
    assert run.output == {"amount": 12.5} and run.completed_by == "billing"
    took = [e for e in harness.store.events(view.id) if e.step_name == "paid" and e.to_status == "succeeded"]
    assert [(e.actor, e.reason) for e in took] == [("billing", "took signal 'payment' from billing")]
    assert kept(harness, view.id) == []


def test_a_signal_sent_before_its_step_is_reached_is_kept_then_taken(harness: Harness) -> None:
    harness.register(payment())
    record = harness.start("pay")  # invoice queued, not run yet
    assert harness.coordinator.signal(record.id, "payment", {"amount": 3}, "early-bird") is None
    assert kept(harness, record.id) == ["payment"]
    assert harness.statuses(record.id)["paid"] == "pending"
    reasons = [e.reason or "" for e in harness.store.events(record.id) if e.step_name is None]
    assert any("signal 'payment' from early-bird kept" in reason for reason in reasons)
    harness.work()
    assert harness.view(record.id).status == "completed"
    run = harness.runs(record.id, "paid")[0]
    assert run.output == {"amount": 3} and run.completed_by == "early-bird"
    assert kept(harness, record.id) == []
    with harness.store.transaction() as tx:
        [signal] = tx.signals(record.id)
    assert (signal.consumed_step, signal.consumed_attempt) == ("paid", 1)


def test_signals_kept_are_taken_one_per_wait_step_in_the_order_sent(harness: Harness) -> None:
    harness.register(
        WorkflowBuilder("twice")
        .agent("a")
        .wait("first", signal="tick", after="a")
        .wait("second", signal="tick", after="first")
        .agent("b", after="second")
    )
    record = harness.start("twice")
    for n in (1, 2, 3):
        harness.coordinator.signal(record.id, "tick", {"n": n}, "clock")
    harness.work()
    assert harness.view(record.id).status == "completed"
    assert harness.runs(record.id, "first")[0].output == {"n": 1}
    assert harness.runs(record.id, "second")[0].output == {"n": 2}
    assert kept(harness, record.id) == ["tick"]  # the third waits for a step that never comes


def test_data_the_schema_refuses_changes_nothing(harness: Harness) -> None:
    harness.register(payment())
    early = harness.start("pay")
    events = len(harness.store.events(early.id))
    with pytest.raises(InputError, match="amount"):
        harness.coordinator.signal(early.id, "payment", {"amount": "lots"}, "billing")
    assert kept(harness, early.id) == [] and len(harness.store.events(early.id)) == events
    waiting = harness.run("pay")
    with pytest.raises(InputError, match="must be a JSON object"):
        harness.coordinator.signal(waiting.id, "payment", ["not", "an", "object"], "billing")
    assert harness.statuses(waiting.id)["paid"] == "waiting"


def test_a_signal_no_step_waits_for_or_to_an_ended_execution_is_refused(harness: Harness) -> None:
    harness.register(payment())
    view = harness.run("pay")
    with pytest.raises(SignalNotFound, match="no step of workflow 'pay' waits for signal 'refund'"):
        harness.coordinator.signal(view.id, "refund", {}, "billing")
    harness.coordinator.cancel(view.id, "operator")
    with pytest.raises(InvalidOperation, match="execution is cancelled"):
        harness.coordinator.signal(view.id, "payment", {"amount": 1}, "billing")
    assert kept(harness, view.id) == []


def test_a_wait_step_is_not_completed_by_hand_nor_listed_as_a_human_task(harness: Harness) -> None:
    harness.register(payment())
    view = harness.run("pay")
    with pytest.raises(InvalidOperation, match="waits for the signal 'payment'"):
        harness.coordinator.complete_step(view.id, "paid", {"amount": 1}, "alice")
    from workflow_engine.store.reports import waiting_for_people

    assert waiting_for_people(harness.store, None, 10) == []
    [waits] = [
        e.reason for e in harness.store.events(view.id) if e.step_name is None and e.to_status == "waiting"
    ]
    assert waits == "waiting for paid (signal)"


def test_a_wait_step_that_times_out_fails_the_execution(harness: Harness) -> None:
    harness.register(payment(timeout=60))
    record = harness.start("pay")
    harness.deliver_one()  # invoice; paid waits with its deadline as a timer
    paid = harness.runs(record.id, "paid")[0]
    assert paid.status == "waiting" and paid.not_before is not None
    harness.work()  # the clock moves to the deadline and the timer fires
    view = harness.view(record.id)
    assert view.status == "failed" and view.error is not None
    assert view.error["type"] == "timeout" and "no signal 'payment' within 60 s" in view.error["message"]
    assert harness.runs(record.id, "ship") == []  # nothing after the wait step ran


def test_an_optional_wait_step_that_times_out_is_passed_over(harness: Harness) -> None:
    harness.register(payment(timeout=5, required=False))
    record = harness.start("pay")
    harness.work()
    assert harness.runs(record.id, "paid")[0].error_type == "timeout"
    assert harness.view(record.id).status == "completed"


def test_a_signal_in_time_beats_the_timeout_and_the_late_timer_does_nothing(harness: Harness) -> None:
    harness.register(payment(timeout=60))
    record = harness.start("pay")
    harness.deliver_one()
    harness.coordinator.signal(record.id, "payment", {"amount": 1}, "billing")
    harness.work()  # the deadline's message still comes: the step took its signal already
    assert harness.view(record.id).status == "completed"
    assert harness.runs(record.id, "paid")[0].status == "succeeded"


def test_a_lost_timeout_message_is_fired_by_the_reconciler(harness: Harness) -> None:
    harness.register(payment(timeout=5))
    record = harness.start("pay")
    harness.deliver_one()
    harness.broker.queue.clear()  # the deadline's message is lost
    harness.clock.advance(10)
    assert harness.reconciler.tick().timers == 1
    harness.work()
    assert harness.view(record.id).status == "failed"


def test_a_retried_wait_step_waits_again_for_a_new_signal(harness: Harness) -> None:
    harness.register(payment(timeout=5))
    record = harness.start("pay")
    harness.work()
    assert harness.view(record.id).status == "failed"
    harness.coordinator.retry(record.id, "operator", from_step="paid")
    assert harness.statuses(record.id)["paid"] == "waiting"
    harness.coordinator.signal(record.id, "payment", {"amount": 9}, "billing")
    harness.work()
    assert harness.view(record.id).status == "completed"
    assert [r.attempt for r in harness.runs(record.id, "paid") if r.status == "succeeded"] == [2]
