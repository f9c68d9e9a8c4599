"""Live followers of executions' events (workflow_engine/notify.py), woken by PostgreSQL
notifications, and the notifications themselves."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa

from tests.conftest import STORES
from tests.support.harness import Harness
from tests.support.polling import poll
from workflow_engine.definitions import WorkflowBuilder
from workflow_engine.notify import EventCursor, EventFeed, Notifier, follow
from workflow_engine.store import schema as t
from workflow_engine.store.opening import store_for
from workflow_engine.store.records import EventRecord, event_row

PG_STORES = [s for s in STORES if s != "sqlite"]


def test_followers_get_the_history_then_live_events_until_the_end(harness: Harness) -> None:
    harness.register(WorkflowBuilder("live").agent("a").agent("b"))
    record = harness.start("live")
    notifier = Notifier(harness.store)
    got: list[EventRecord] = []
    arrived = threading.Event()
    # a long poll interval: on PostgreSQL only a notification can wake the follower in time
    interval = 30.0 if harness.store.dialect == "postgresql" else 0.05

    def consume() -> None:
        for event in follow(harness.store, notifier, record.id, poll_interval=interval):
            got.append(event)
            arrived.set()

    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    assert arrived.wait(5)  # the history so far
    if harness.store.dialect == "postgresql":
        assert notifier.listening.wait(5)
    before = len(got)
    began = time.monotonic()
    harness.deliver_one()  # step a runs: new events commit
    poll(lambda: len(got) > before, 5, "step a's events", interval=0.01)
    assert time.monotonic() - began < 2
    harness.work()
    thread.join(10)
    assert not thread.is_alive()
    assert [e.id for e in got] == [e.id for e in harness.store.events(record.id)]
    assert got[-1].to_status == "completed"
    notifier.stop()


@pytest.mark.parametrize("database_url", PG_STORES, indirect=True, ids=["psycopg", "psycopg2"])
def test_notifications_reach_listeners_only_on_commit(harness: Harness) -> None:
    notifier = Notifier(harness.store)
    woken = threading.Event()
    notifier.subscribe("exec-1", woken.set)
    assert notifier.listening.wait(5)
    with pytest.raises(RuntimeError), harness.store.transaction() as tx:
        tx.notify("exec-1")
        raise RuntimeError("rolled back")
    assert not woken.wait(0.5)
    with harness.store.transaction() as tx:
        tx.notify("exec-1")
    assert woken.wait(5)
    notifier.stop()


def test_a_feed_delivers_every_execution_s_events_written_by_another_store(harness: Harness) -> None:
    reader = store_for(harness.store.engine.url.render_as_string(hide_password=False))
    notifier = Notifier(reader)
    got: list[EventRecord] = []
    feed = EventFeed(reader, notifier, got.append, poll_interval=0.05).start()
    try:
        harness.register(WorkflowBuilder("fed").agent("a").agent("b"))
        views = [harness.run("fed"), harness.run("fed")]
        expected = [e.id for v in views for e in harness.store.events(v.id)]
        poll(lambda: len(got) >= len(expected), 5, "every event from the feed", interval=0.02)
        assert sorted(e.id for e in got) == sorted(expected)
    finally:
        feed.stop()
        notifier.stop()
        reader.dispose()


def commit_out_of_order(harness: Harness, execution_id: str, read: Callable[[], object]) -> tuple[int, int]:
    """Two events of ``execution_id``: the lower id commits after the higher one; ``read`` runs
    between the two commits and after both (twice). Their ids, lower first."""

    def event(reason: str) -> dict[str, Any]:
        return event_row(execution_id, None, None, None, "running", "test", harness.clock.now(), reason)

    with harness.store.engine.connect() as slow:
        transaction = slow.begin()
        slow.execute(sa.insert(t.events).values(event("slow")))  # takes the lower id, commits last
        with harness.store.transaction() as tx:
            tx.insert_events([event("fast")])
        read()
        transaction.commit()
    read()
    read()
    slow_id, fast_id = (e.id for e in harness.store.events(execution_id)[-2:])
    assert slow_id < fast_id
    return slow_id, fast_id


@pytest.mark.parametrize("database_url", PG_STORES, indirect=True, ids=["psycopg", "psycopg2"])
def test_a_feed_delivers_an_event_that_commits_after_a_later_one(harness: Harness) -> None:
    harness.register(WorkflowBuilder("late").agent("a"))
    record = harness.start("late")
    got: list[int] = []
    feed = EventFeed(harness.store, Notifier(harness.store), lambda e: got.append(e.id))
    slow_id, fast_id = commit_out_of_order(harness, record.id, feed.poll)
    assert got == [fast_id, slow_id]  # each delivered once, the late one too


@pytest.mark.parametrize("database_url", PG_STORES, indirect=True, ids=["psycopg", "psycopg2"])
def test_an_execution_s_cursor_gives_an_event_that_commits_after_a_later_one(harness: Harness) -> None:
    harness.register(WorkflowBuilder("late").agent("a"))
    record = harness.start("late")
    cursor = EventCursor(harness.store, record.id)
    got: list[int] = []

    def read() -> None:
        got.extend(e.id for e in cursor.poll()[0])

    slow_id, fast_id = commit_out_of_order(harness, record.id, read)
    assert got[-2:] == [fast_id, slow_id] and len(got) == len(set(got))  # once each, the late one too


def test_a_feed_reads_full_batches_at_once_and_stops_waiting_for_ids_that_never_commit(
    harness: Harness,
) -> None:
    harness.register(WorkflowBuilder("batched").agent("a").agent("b"))
    now = [0.0]
    got: list[int] = []
    feed = EventFeed(
        harness.store, Notifier(harness.store), lambda e: got.append(e.id), batch=2, clock=lambda: now[0]
    )
    view = harness.run("batched")
    ids = [e.id for e in harness.store.events(view.id)]
    assert feed.poll() == len(ids) > 2 and got == ids  # several batches in one poll
    feed.gaps = {ids[-1] + 1000: 0.0}  # an id taken by a transaction that rolled back
    now[0] = feed.gap_timeout + 1
    assert feed.poll() == 0 and feed.gaps == {}


def test_a_feed_callback_may_stop_its_own_feed(harness: Harness) -> None:
    harness.register(WorkflowBuilder("selfstop").agent("a"))
    got: list[EventRecord] = []
    notifier = Notifier(harness.store)
    feed = EventFeed(harness.store, notifier, lambda e: (got.append(e), feed.stop()), poll_interval=0.05)
    feed.start()
    try:
        harness.run("selfstop")
        assert feed._thread is not None
        feed._thread.join(5)
        assert not feed._thread.is_alive() and len(got) == 1  # nothing after it stopped itself
    finally:
        notifier.stop()
