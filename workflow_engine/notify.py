"""Live events across processes: PostgreSQL LISTEN/NOTIFY wakes followers of the events table.

Every transaction that writes events also sends ``NOTIFY wfe_events, '<execution id>'``; the
notification is delivered only if the transaction commits, so a follower never hears of an
event it cannot read. Followers read the events table (the source of truth) when woken, and at
a poll interval in any case, so a missed notification only delays them. On SQLite there is no
notification: followers poll.
"""

from __future__ import annotations

import logging
import select
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterator
from typing import Any

from workflow_engine.core.states import TERMINAL_EXECUTION
from workflow_engine.events import deliver
from workflow_engine.outages import warn
from workflow_engine.store.postgres import CHANNEL
from workflow_engine.store.records import EventRecord
from workflow_engine.store.repository import Store

log = logging.getLogger(__name__)
Waker = Callable[[], None]
ANY = "*"  # subscribe to the notifications of every execution


class Notifier:
    """One LISTEN connection per process, fanning notifications out to waiting followers."""

    def __init__(self, store: Store, reconnect_after: float = 1.0) -> None:
        self.store = store
        self.reconnect_after = reconnect_after
        self._wakers: dict[str, set[Waker]] = defaultdict(set)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.listening = threading.Event()

    @property
    def supported(self) -> bool:
        return self.store.notifies

    def subscribe(self, execution_id: str, wake: Waker) -> Callable[[], None]:
        """Call ``wake`` (from another thread) whenever ``execution_id`` has new events
        (:data:`ANY`: whenever any execution has)."""
        self._ensure_started()
        with self._lock:
            self._wakers[execution_id].add(wake)

        def unsubscribe() -> None:
            with self._lock:
                wakers = self._wakers.get(execution_id)
                if wakers is not None:
                    wakers.discard(wake)
                    if not wakers:
                        del self._wakers[execution_id]

        return unsubscribe

    def _ensure_started(self) -> None:
        if self.supported and self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._listen, name="wfe-notifier", daemon=True)
                    self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _listen(self) -> None:
        while not self._stop.is_set():
            try:
                raw = self.store.engine.raw_connection()
            except Exception as exc:
                warn(log, exc, "event listener cannot connect; retrying")
                self._stop.wait(self.reconnect_after)
                continue
            try:
                connection: Any = raw.driver_connection
                connection.autocommit = True
                with connection.cursor() as cursor:
                    cursor.execute(f"LISTEN {CHANNEL}")
                self.listening.set()
                psycopg3 = self.store.engine.dialect.driver == "psycopg"
                receive = _psycopg_notifies if psycopg3 else _psycopg2_notifies
                while not self._stop.is_set():
                    for payload in receive(connection, 1.0):
                        self._wake(payload)
            except Exception as exc:
                warn(log, exc, "event listener lost its connection; reconnecting")
                self.listening.clear()
                self._stop.wait(self.reconnect_after)
            finally:
                try:
                    raw.invalidate()
                except Exception:
                    log.debug("closing the listener connection failed", exc_info=True)

    def _wake(self, execution_id: str) -> None:
        with self._lock:
            wakers = [*self._wakers.get(execution_id, ()), *self._wakers.get(ANY, ())]
        for wake in wakers:
            wake()


def _psycopg_notifies(connection: Any, wait: float) -> Iterator[str]:
    """The payloads psycopg 3 receives on ``connection`` within ``wait`` seconds."""
    for notify in connection.notifies(timeout=wait):
        yield notify.payload


def _psycopg2_notifies(connection: Any, wait: float) -> Iterator[str]:
    """The payloads psycopg2 has received once ``connection`` is readable (at most ``wait`` s)."""
    ready, _, _ = select.select([connection], [], [], wait)
    if ready:
        connection.poll()
        while connection.notifies:
            yield connection.notifies.pop(0).payload


MAX_LOOKBACK_IDS = 500


class EventCursor:
    """Reads an execution's new events; knows when there will be no more.

    Most of an execution's events are written under its row lock, in id order, but a claim
    writes its event without the lock, so an id can commit just after a higher one was read.
    The cursor reads again from the lowest id it gave in the last ``lookback`` seconds and
    skips what it gave already, so such an event is still given, once.
    """

    def __init__(
        self,
        store: Store,
        execution_id: str,
        after_id: int = 0,
        finished: Callable[[str], bool] = lambda status: status in TERMINAL_EXECUTION,
        lookback: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.execution_id = execution_id
        self.after_id = after_id  # every event up to here was given, or is older than the lookback
        self.finished = finished
        self.lookback = lookback
        self.clock = clock
        self.status: str | None = None
        self._recent: deque[tuple[float, int]] = deque()  # (when given, id) within the lookback

    def poll(self) -> tuple[list[EventRecord], bool]:
        """Events since the last poll, and whether the execution has reached its end.

        The status is read before the events, so events committed with a final status are
        read in the same poll that sees it.
        """
        now = self.clock()
        while self._recent and now - self._recent[0][0] > self.lookback:
            self.after_id = max(self.after_id, self._recent.popleft()[1])
        self.status = self.store.get_execution(self.execution_id).status
        given = [event_id for _, event_id in self._recent]
        top = max(given, default=self.after_id)
        late: list[EventRecord] = []
        if given and len(given) <= MAX_LOOKBACK_IDS:  # a burst larger than that is not re-read
            late = self.store.events(self.execution_id, self.after_id, before_id=top, excluding=given)
        events = [*late, *self.store.events(self.execution_id, top)]
        self._recent.extend((now, e.id) for e in events)
        return events, self.finished(self.status)


def follow(
    store: Store,
    notifier: Notifier,
    execution_id: str,
    after_id: int = 0,
    poll_interval: float = 0.5,
    until_settled: Callable[[str], bool] | None = None,
    stopped: Callable[[], bool] = lambda: False,
) -> Iterator[EventRecord]:
    """The execution's events after ``after_id``: the history, then live ones as they commit.

    Ends once the execution is terminal and every event has been given (or ``stopped()``).
    """
    cursor = EventCursor(store, execution_id, after_id, until_settled or (lambda s: s in TERMINAL_EXECUTION))
    woken = threading.Event()
    unsubscribe = notifier.subscribe(execution_id, woken.set)
    try:
        while not stopped():
            woken.clear()
            events, done = cursor.poll()
            yield from events
            if done:
                return
            woken.wait(poll_interval)
    finally:
        unsubscribe()


class EventFeed:
    """Every event of every execution, from any process, to a callback, as it commits.

    Ids come from a sequence, so concurrent transactions can commit them out of order: the feed
    reads past a missing id and delivers what it finds, then keeps asking for the missing ids
    until they appear or ``gap_timeout`` passes (a rolled-back transaction's id never will).
    A jump wider than ``max_gap`` is taken for rolled-back work and not waited for.
    """

    def __init__(
        self,
        store: Store,
        notifier: Notifier,
        deliver: Callable[[EventRecord], None],
        after_id: int | None = None,
        poll_interval: float = 0.5,
        gap_timeout: float = 10.0,
        max_gap: int = 1000,
        batch: int = 1000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.notifier = notifier
        self.deliver = deliver
        self.top = store.last_event_id() if after_id is None else after_id  # highest id delivered
        self.poll_interval = poll_interval
        self.gap_timeout = gap_timeout
        self.max_gap = max_gap
        self.batch = batch
        self.clock = clock
        self.gaps: dict[int, float] = {}  # missing id below ``top`` → when it was first missed
        self._stop = threading.Event()
        self._woken = threading.Event()
        self._thread: threading.Thread | None = None

    def poll(self) -> int:
        """Deliver what has committed since the last poll; how many events."""
        delivered = 0
        while True:
            now = self.clock()
            self.gaps = {i: since for i, since in self.gaps.items() if now - since <= self.gap_timeout}
            late = self.store.events_by_ids(sorted(self.gaps)) if self.gaps else []
            fresh = self.store.events_since(self.top, self.batch)
            for event in late:
                del self.gaps[event.id]
            for event in fresh:
                if event.id - self.top <= self.max_gap:
                    self.gaps.update(dict.fromkeys(range(self.top + 1, event.id), now))
                self.top = event.id
            for event in (*late, *fresh):
                if self._stop.is_set():
                    return delivered
                deliver(self.deliver, event)
                delivered += 1
            if len(fresh) < self.batch:
                return delivered

    def run(self) -> None:
        unsubscribe = self.notifier.subscribe(ANY, self._woken.set)
        try:
            while not self._stop.is_set():
                self._woken.clear()
                try:
                    self.poll()
                except Exception as exc:
                    warn(log, exc, "event feed: reading events failed; retrying")
                self._woken.wait(self.poll_interval)
        finally:
            unsubscribe()

    def start(self) -> EventFeed:
        self._thread = threading.Thread(target=self.run, name="wfe-event-feed", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop delivering (callable from the callback itself: it then returns at once)."""
        self._stop.set()
        self._woken.set()
        thread = self._thread
        if thread is None or thread is threading.current_thread():
            return
        thread.join(5)
        if thread.is_alive():
            log.warning("event feed: its callback has not returned; the feed stops after it does")
