"""Fleet-wide rate limits on SQLite and PostgreSQL, with a fixed clock: a rate-limited step
waits queued for its window, costs no attempt, never starts more often than its rate in any
window, counts per key, and a worker taking its message from any coordinator sees one log."""

from __future__ import annotations

import bisect
import random
from datetime import datetime, timedelta

from tests.support.harness import Harness
from workflow_engine.coordinator.service import Coordinator
from workflow_engine.definitions import WorkflowBuilder


def most_in_a_window(starts: list[datetime], seconds: float) -> int:
    ordered = sorted(starts)
    window = timedelta(seconds=seconds)
    return max(
        bisect.bisect_right(ordered, at + window - timedelta(microseconds=1)) - i
        for i, at in enumerate(ordered)
    )


def fan(harness: Harness, count: int, rate: str, key: str | None = None) -> None:
    options = {"rate_limit": rate, **({"rate_limit_key": key} if key else {})}
    harness.register(
        WorkflowBuilder("calls")
        .agent("items", config={"count": count})
        .map("call", "steps.items.items", agent="call", after="items", **options)
    )
    harness.agent("items", lambda ctx: {"items": list(range(ctx.config["count"]))})


def item_starts(harness: Harness, execution_id: str) -> list[datetime]:
    runs = [r for r in harness.runs(execution_id, "call") if r.item_index is not None]
    assert all(r.started_at is not None for r in runs)
    return [r.started_at for r in runs if r.started_at is not None]


def test_a_rate_limited_map_never_starts_more_than_its_rate_in_any_window(harness: Harness) -> None:
    fan(harness, 20, "5/s")
    began = harness.clock.now()
    view = harness.run("calls")
    assert view.status == "completed"
    starts = item_starts(harness, view.id)
    assert len(starts) == 20 and most_in_a_window(starts, 1.0) == 5
    # waiting costs no attempt, and it waited only as long as the rate asks
    assert {r.attempt for r in harness.runs(view.id, "call")} == {1}
    assert timedelta(seconds=3) <= max(starts) - began < timedelta(seconds=5)


def test_each_key_has_a_window_of_its_own(harness: Harness) -> None:
    fan(harness, 6, "2/m", key="input.tenant")
    acme = harness.start("calls", input_data={"tenant": "acme"})
    other = harness.start("calls", input_data={"tenant": "other"})
    harness.work()
    for record in (acme, other):
        starts = item_starts(harness, record.id)
        assert most_in_a_window(starts, 60) == 2
        assert timedelta(minutes=2) <= max(starts) - min(starts) < timedelta(minutes=3)
    both = item_starts(harness, acme.id) + item_starts(harness, other.id)
    assert most_in_a_window(both, 60) == 4  # two per key


def test_a_waiting_run_stays_queued_with_its_message_due_when_the_window_frees(harness: Harness) -> None:
    harness.register(WorkflowBuilder("one").agent("call", rate_limit="1/h"))
    first, second = harness.start("one"), harness.start("one")
    harness.deliver_one()
    harness.deliver_one()
    waiting = harness.runs(second.id, "call")[0]
    assert harness.runs(first.id, "call")[0].status == "succeeded"
    assert waiting.status == "queued" and waiting.attempt == 1
    assert waiting.not_before is not None and waiting.not_before - harness.clock.now() > timedelta(minutes=59)
    assert [d.eta for d in harness.broker.queue if d.run_id == waiting.id] == [waiting.not_before]


def test_workers_of_several_coordinators_share_one_window(harness: Harness) -> None:
    harness.register(WorkflowBuilder("one").agent("call", rate_limit="3/m"))
    records = [harness.start("one") for _ in range(8)]
    others = [
        Coordinator(harness.store, harness.broker, harness.settings, rng=random.Random(n)) for n in range(3)
    ]
    admitted = 0
    for n, record in enumerate(records):
        run = harness.runs(record.id, "call")[0]
        admitted += others[n % 3].rates.admit(run.id)[0]
    assert admitted == 3
