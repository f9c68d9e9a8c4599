"""An execution's events followed on the event loop: what the API's stream and the monitor's
live pages both send from. Each poll runs in a worker thread; a notification (or the poll
interval) wakes it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool

from workflow_engine.engine import Engine
from workflow_engine.notify import EventCursor
from workflow_engine.store.records import EventRecord

KEEPALIVE_SECONDS = 15.0


@dataclass(frozen=True)
class Batch:
    events: list[EventRecord]  # (empty: a keep-alive is due)
    done: bool  # the execution ended and every event was given
    status: str | None


async def batches(engine: Engine, execution_id: str, after_id: int) -> AsyncIterator[Batch]:
    """New events as they commit, a batch at a time, until the execution's end and its last
    event (however long its history); an empty batch every ``KEEPALIVE_SECONDS`` of quiet."""
    cursor = EventCursor(engine.store, execution_id, after_id)
    loop = asyncio.get_running_loop()
    woken = asyncio.Event()

    def wake() -> None:
        loop.call_soon_threadsafe(woken.set)

    unsubscribe = engine.notifier.subscribe(execution_id, wake)
    poll = engine.settings.events_poll_interval
    quiet = 0.0
    try:
        while True:
            woken.clear()
            events, ended = await run_in_threadpool(cursor.poll)
            # (a poll reads a page of events: an ended execution's history is sent to its last
            # page, the one read that finds nothing more)
            done = ended and not events
            quiet = 0.0 if events else quiet + poll
            if events or done or quiet >= KEEPALIVE_SECONDS:
                quiet = 0.0
                yield Batch(events, done, cursor.status)
            if done:
                return
            if ended:
                continue  # (its next page at once)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(woken.wait(), poll)
    finally:
        unsubscribe()
