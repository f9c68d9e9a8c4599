"""The event bus: every transition, after its transaction commits, to whoever listens.

In-process subscribers (callables) see the events their own process wrote, synchronously after
commit. Subscribers that want every process's events follow the events table, woken by the
notifier (:class:`workflow_engine.notify.EventFeed`, behind ``Engine.subscribe``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

log = logging.getLogger(__name__)

Event = dict[str, Any]
Subscriber = Callable[[Event], None]


def deliver(subscriber: Callable[[Any], None], event: Any) -> None:
    """Call ``subscriber`` with ``event``; a failure is logged, never raised to the writer."""
    try:
        subscriber(event)
    except Exception:
        log.exception("event subscriber %r failed", subscriber)


class EventBus:
    """In-process hooks: ``bus.subscribe(print)``; a failing subscriber is logged, not fatal."""

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []
        self._lock = threading.Lock()

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Call ``subscriber`` with each event; returns a function that unsubscribes."""
        with self._lock:
            self._subscribers.append(subscriber)

        def unsubscribe() -> None:
            with self._lock:
                if subscriber in self._subscribers:
                    self._subscribers.remove(subscriber)

        return unsubscribe

    def publish(self, events: Sequence[Event]) -> None:
        if not events:
            return
        with self._lock:
            subscribers = list(self._subscribers)
        for subscriber in subscribers:
            for event in events:
                deliver(subscriber, event)
