"""Quotas on SQLite and PostgreSQL: what one owner may ask of the engine (executions in flight,
starts a minute, kept signals, schedules, stored sizes), each refusal clear and writing nothing;
the deployment's own work is not limited."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.harness import Harness
from workflow_engine.coordinator.scheduler import Scheduler
from workflow_engine.core.quotas import OUTPUT_TOO_LARGE, QuotaExceeded
from workflow_engine.definitions import WorkflowBuilder
from workflow_engine.errors import InputError
from workflow_engine.schedules import Schedules
from workflow_engine.store import listing
from workflow_engine.store.listing import ExecutionQuery


def quota_harness(database_url: str, **settings: Any) -> Harness:
    harness = Harness(database_url, **settings)
    harness.register(WorkflowBuilder("one").agent("a"))
    return harness


def executions_of(harness: Harness, owner: int) -> int:
    with harness.store.reading() as conn:
        return listing.page(conn, ExecutionQuery(owner_id=owner, limit=1000), count=True)[1]


def test_an_owner_may_have_only_so_many_executions_in_flight(database_url: str) -> None:
    with quota_harness(database_url, quota_executions_in_flight=2) as harness:
        alice = harness.store.create_user("alice", None, "operator").id
        bob = harness.store.create_user("bob", None, "operator").id
        first = harness.start("one", owner_id=alice)
        harness.start("one", owner_id=alice)
        with pytest.raises(QuotaExceeded, match="2 executions of this owner have not ended") as refused:
            harness.start("one", owner_id=alice)
        assert refused.value.retry_after > 0
        assert executions_of(harness, alice) == 2  # nothing written
        harness.start("one", owner_id=bob)  # another owner's quota is its own
        for _ in range(3):  # the deployment's own starts are not limited
            harness.start("one")
        harness.work()
        assert harness.view(first.id).status == "completed"
        harness.start("one", owner_id=alice)  # they ended: room again


def test_children_count_toward_their_owners_executions_in_flight(database_url: str) -> None:
    with quota_harness(database_url, quota_executions_in_flight=2) as harness:
        harness.register(WorkflowBuilder("held").wait("hold", signal="go"))
        harness.register(WorkflowBuilder("parent").workflow("child", workflow="held"))
        alice = harness.store.create_user("alice", None, "operator").id
        parent = harness.start("parent", owner_id=alice)
        harness.work()  # the parent's step starts its child, which waits: two in flight
        assert len(harness.store.children(parent.id, limit=10)) == 1
        with pytest.raises(QuotaExceeded):
            harness.start("one", owner_id=alice)


def test_an_owner_may_start_only_so_many_executions_a_minute(database_url: str) -> None:
    with quota_harness(database_url, quota_starts_per_minute=3, quota_executions_in_flight=0) as harness:
        alice = harness.store.create_user("alice", None, "operator").id
        for _ in range(3):
            harness.start("one", owner_id=alice)
            harness.clock.advance(10)
        within = "3 executions started by this owner within a minute"
        with pytest.raises(QuotaExceeded, match=within) as refused:
            harness.start("one", owner_id=alice)
        assert refused.value.retry_after == 30  # when the first of the three leaves the minute
        harness.clock.advance(30)
        harness.start("one", owner_id=alice)


def test_input_and_metadata_larger_than_the_limit_are_refused(database_url: str) -> None:
    with quota_harness(database_url, max_input_bytes=1000) as harness:
        with pytest.raises(InputError, match=r"takes 1[0-9]{3} bytes stored; at most 1000"):
            harness.start("one", input={"text": "x" * 600}, metadata={"note": "y" * 500})
        harness.start("one", input={"text": "x" * 600})


def test_an_execution_keeps_only_so_many_signals_and_bytes(database_url: str) -> None:
    with quota_harness(database_url, quota_signals_kept=2, quota_signal_bytes=100) as harness:
        pay = WorkflowBuilder("pay").agent("invoice").wait("paid", signal="payment", after="invoice")
        harness.register(pay)
        record = harness.start("pay")
        assert harness.coordinator.signal(record.id, "payment", {"n": 1}, "billing") is None
        with pytest.raises(QuotaExceeded, match=r"would take 1[0-9]{2} bytes"):
            harness.coordinator.signal(record.id, "payment", {"text": "x" * 100}, "billing")
        assert harness.coordinator.signal(record.id, "payment", {"n": 2}, "billing") is None
        with pytest.raises(QuotaExceeded, match="keeps 2 signals"):
            harness.coordinator.signal(record.id, "payment", {"n": 3}, "billing")
        harness.work()  # the first kept one is taken
        assert harness.view(record.id).status == "completed"


def test_signal_data_larger_than_the_output_limit_is_refused(database_url: str) -> None:
    with quota_harness(database_url, max_output_bytes=100) as harness:
        harness.register(WorkflowBuilder("pay").wait("paid", signal="payment"))
        record = harness.start("pay")
        with pytest.raises(InputError, match="WFE_MAX_OUTPUT_BYTES"):
            harness.coordinator.signal(record.id, "payment", {"text": "x" * 200}, "billing")
        assert harness.view(record.id).status == "waiting"


def test_an_output_larger_than_the_limit_fails_its_step_and_is_not_stored(database_url: str) -> None:
    with quota_harness(database_url, max_output_bytes=1000) as harness:
        harness.agent("a", lambda ctx: {"text": "x" * 2000})
        view = harness.run("one")
        assert view.status == "failed"
        run = harness.runs(view.id, "a")[0]
        assert run.output is None and run.error_code == OUTPUT_TOO_LARGE
        assert run.error_message is not None and "at most 1000" in run.error_message


def test_a_checkpoint_larger_than_the_limit_fails_its_step(database_url: str) -> None:
    with quota_harness(database_url, max_output_bytes=1000) as harness:

        def saves(ctx: Any) -> dict[str, Any]:
            ctx.save_checkpoint({"text": "x" * 2000})
            return {}

        harness.agent("a", saves)
        view = harness.run("one")
        run = harness.runs(view.id, "a")[0]
        assert view.status == "failed" and run.error_code == OUTPUT_TOO_LARGE and run.checkpoint is None


def test_schedules_per_owner_and_their_shortest_interval(database_url: str) -> None:
    with quota_harness(database_url, quota_schedules=1, schedule_min_interval=10) as harness:
        schedules = Schedules(Scheduler(harness.coordinator, harness.settings, harness.clock))
        alice = harness.store.create_user("alice", None, "operator").id
        with pytest.raises(InputError, match="at least 10 seconds"):
            schedules.create("often", "one", every=5, owner_id=alice)
        schedules.create("poll", "one", every=10, owner_id=alice)
        with pytest.raises(QuotaExceeded, match="this owner has 1 schedules"):
            schedules.create("more", "one", every=60, owner_id=alice)
        schedules.create("deployed", "one", every=1)  # the deployment's own: not limited


def test_a_fire_refused_by_a_quota_is_recorded_as_failed(database_url: str) -> None:
    with quota_harness(database_url, quota_executions_in_flight=1) as harness:
        schedules = Schedules(Scheduler(harness.coordinator, harness.settings, harness.clock))
        alice = harness.store.create_user("alice", None, "operator").id
        harness.start("one", owner_id=alice)  # not run: in flight
        schedules.create("poll", "one", every=10, owner_id=alice, overlap="allow_all")
        harness.clock.advance(10)
        schedules.scheduler.tick()
        failed = [f for f in schedules.get("poll", alice).skipped_fires if f["action"] == "failed"]
        assert len(failed) == 1 and "WFE_QUOTA_EXECUTIONS_IN_FLIGHT" in failed[0]["reason"]
        assert executions_of(harness, alice) == 1
